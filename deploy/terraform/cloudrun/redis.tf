# SPDX-License-Identifier: Apache-2.0
#
# Optional Memorystore for Redis: with it, rate limits, the flow cache and the circuit
# breaker are shared by every instance instead of kept per instance. The app degrades
# through a Redis outage (see the README's Operating section), so BASIC is usable too.

resource "google_redis_instance" "shared" {
  count = var.redis_enabled ? 1 : 0

  project            = var.project_id
  region             = var.region
  name               = local.names.redis
  display_name       = "${var.service_name} shared state"
  tier               = var.redis_tier
  memory_size_gb     = var.redis_memory_size_gb
  redis_version      = var.redis_version
  authorized_network = var.network
  connect_mode       = "DIRECT_PEERING"
  # AUTH: the VPC is not the only gate; the password reaches the app through Secret
  # Manager inside REDIS_URL.
  auth_enabled = true
  # In-transit TLS would need Memorystore's own CA inside the container, which the image
  # does not carry; traffic stays on the private network over direct VPC egress.
  #checkov:skip=CKV_GCP_97:Memorystore TLS needs its server CA in the container; traffic stays on the VPC
  transit_encryption_mode = "DISABLED"
  labels                  = var.labels

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 3
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }
}

# REDIS_URL holds the AUTH string, so it is a secret, not a plain variable.
resource "google_secret_manager_secret" "redis_url" {
  count = var.redis_enabled ? 1 : 0

  project   = var.project_id
  secret_id = local.names.redis_secret
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "redis_url" {
  count = var.redis_enabled ? 1 : 0

  secret      = google_secret_manager_secret.redis_url[0].id
  secret_data = "redis://:${google_redis_instance.shared[0].auth_string}@${google_redis_instance.shared[0].host}:${google_redis_instance.shared[0].port}/0"
}
