# SPDX-License-Identifier: Apache-2.0
#
# genkit-endpoints on Cloud Run: the REST service, optionally a gRPC service from the same
# image, their service account, and optionally a Memorystore Redis for shared state.
#
# Why two services for REST and gRPC: Cloud Run routes exactly one container port per
# service and speaks either HTTP/1.1 or HTTP/2 cleartext (h2c) to it. The app's REST
# servers speak HTTP/1.1 only (their hardening rejects anything else), and gRPC needs
# HTTP/2 end to end, on a port of its own. So the REST service keeps Cloud Run's HTTP/1.1
# hop (clients still get HTTP/2 from Cloud Run's front end; SSE streams pass through),
# and the gRPC service marks its port "h2c" so gRPC frames reach grpcio untouched.

locals {
  # Secret-bearing settings, by name -> secret and version. REDIS_URL comes from the
  # module's own secret when it creates the Redis instance.
  secret_env = merge(
    var.secret_env,
    var.redis_enabled ? {
      REDIS_URL = {
        secret  = google_secret_manager_secret.redis_url[0].secret_id
        version = google_secret_manager_secret_version.redis_url[0].version
      }
    } : {},
  )
}

resource "google_cloud_run_v2_service" "this" {
  for_each = local.services

  project             = var.project_id
  location            = var.region
  name                = each.value.name
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = google_service_account.runtime.email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.max_concurrency
    timeout                          = "${var.request_timeout_seconds}s"
    labels                           = var.labels

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    # Direct VPC egress: the Redis instance has only a private address. Only private
    # ranges go through the VPC; model providers are still reached directly.
    dynamic "vpc_access" {
      for_each = var.redis_enabled ? [1] : []
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network
          subnetwork = var.subnetwork
        }
      }
    }

    containers {
      image = var.image
      args  = each.value.args

      ports {
        name           = each.value.port_name
        container_port = each.value.port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = !var.cpu_always_allocated
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.common_env, each.value.env)
        content {
          name  = env.key
          value = env.value
        }
      }

      # Secrets by reference: Cloud Run reads them from Secret Manager when an instance
      # starts, so their values are in neither this configuration nor the revision.
      dynamic "env" {
        for_each = local.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = env.value.version
            }
          }
        }
      }

      # Startup: traffic only once the app says it can serve (/ready is 503 until the
      # model provider answered). Generous: a Gemini warm-up can take a while.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 5
        timeout_seconds       = 3
        failure_threshold     = 24

        dynamic "http_get" {
          for_each = each.value.probe == "http" ? [1] : []
          content {
            path = "/ready"
            port = each.value.port
            dynamic "http_headers" {
              for_each = local.probe_host == null ? [] : [local.probe_host]
              content {
                name  = "Host"
                value = http_headers.value
              }
            }
          }
        }

        # gRPC health of the whole server ("") follows /ready.
        dynamic "grpc" {
          for_each = each.value.probe == "grpc" ? [1] : []
          content {
            port = each.value.port
          }
        }
      }

      # Liveness: restart only a process that stopped answering. /health never calls a
      # model or Redis, so a provider or Redis outage does not restart instances.
      # The gRPC service can only probe its own port, where gRPC health follows
      # readiness; its threshold is long enough to ride out a short outage.
      liveness_probe {
        period_seconds    = 10
        timeout_seconds   = 3
        failure_threshold = each.value.probe == "http" ? 3 : 12

        dynamic "http_get" {
          for_each = each.value.probe == "http" ? [1] : []
          content {
            path = "/health"
            port = each.value.port
            dynamic "http_headers" {
              for_each = local.probe_host == null ? [] : [local.probe_host]
              content {
                name  = "Host"
                value = http_headers.value
              }
            }
          }
        }

        dynamic "grpc" {
          for_each = each.value.probe == "grpc" ? [1] : []
          content {
            port = each.value.port
          }
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = var.min_instances <= var.max_instances
      error_message = "min_instances must not exceed max_instances."
    }
    precondition {
      condition     = !var.redis_enabled || (var.network != null && var.subnetwork != null)
      error_message = "redis_enabled needs network and subnetwork (direct VPC egress to the Redis instance)."
    }
    precondition {
      condition     = !(var.redis_enabled && contains(keys(var.secret_env), "REDIS_URL"))
      error_message = "With redis_enabled the module sets REDIS_URL itself; remove it from secret_env."
    }
    precondition {
      condition     = length(local.trusted_hosts) == 0 || local.probe_host != null
      error_message = "TRUSTED_HOSTS needs at least one exact host name (not only *.example.com), which the probes send as their Host."
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.runtime]
}
