# SPDX-License-Identifier: Apache-2.0

output "url" {
  description = "HTTPS URL of the REST service."
  value       = google_cloud_run_v2_service.this["rest"].uri
}

output "service_name" {
  description = "Name of the REST service."
  value       = google_cloud_run_v2_service.this["rest"].name
}

output "grpc_url" {
  description = "HTTPS URL of the gRPC service (clients dial its host on port 443 with TLS); null without grpc_enabled."
  value       = var.grpc_enabled ? google_cloud_run_v2_service.this["grpc"].uri : null
}

output "grpc_service_name" {
  description = "Name of the gRPC service; null without grpc_enabled."
  value       = var.grpc_enabled ? google_cloud_run_v2_service.this["grpc"].name : null
}

output "service_account_email" {
  description = "Runtime service account of the services."
  value       = google_service_account.runtime.email
}

output "redis_host" {
  description = "Private address of the Memorystore instance; null without redis_enabled."
  value       = var.redis_enabled ? google_redis_instance.shared[0].host : null
}
