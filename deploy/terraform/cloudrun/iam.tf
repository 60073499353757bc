# SPDX-License-Identifier: Apache-2.0
#
# The services run as an identity of their own that may do one thing: read the secrets
# they are configured with. Logs (stdout/stderr) are collected by Cloud Run itself and
# need no role; traces go to the OTLP collector OTEL_EXPORTER_OTLP_ENDPOINT names.

locals {
  # By secret, not by setting: two settings reading one secret need one grant.
  readable_secrets = toset(concat(
    [for s in values(var.secret_env) : s.secret],
    var.redis_enabled ? [local.names.redis_secret] : [],
  ))
  invoker_members = concat(var.invokers, var.public_access ? ["allUsers"] : [])
  invoker_bindings = {
    for pair in setproduct(keys(local.services), local.invoker_members) :
    "${pair[0]} ${pair[1]}" => { service = pair[0], member = pair[1] }
  }
}

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = local.names.service_account
  display_name = "${var.service_name} on Cloud Run"
  description  = "Runtime identity of the ${var.service_name} Cloud Run services: reads their secrets, nothing else."
}

# secretAccessor on each named secret, never on the project: the service can read the
# secrets it is configured with and no other.
resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = local.readable_secrets

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member

  depends_on = [google_secret_manager_secret.redis_url]
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invoker_bindings

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this[each.value.service].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
