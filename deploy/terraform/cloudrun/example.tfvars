# SPDX-License-Identifier: Apache-2.0
#
# Every feature on: a starting point for your own tfvars, and what the checks scan.
# Secrets are named here, never written: create them in Secret Manager first.

project_id   = "my-genkit-project"
region       = "europe-west1"
service_name = "genkit-endpoints"
image        = "europe-west1-docker.pkg.dev/my-genkit-project/apps/genkit-endpoints@sha256:0000000000000000000000000000000000000000000000000000000000000000"

min_instances   = 1
max_instances   = 10
max_concurrency = 80

env = {
  MODEL         = "googleai/gemini-2.5-flash"
  TRUSTED_HOSTS = "api.example.com"
  LOG_LEVEL     = "info"
}

secret_env = {
  API_KEYS       = { secret = "genkit-api-keys", version = "1" }
  GEMINI_API_KEY = { secret = "gemini-api-key", version = "1" }
  METRICS_KEY    = { secret = "genkit-metrics-key" }
}

invokers = ["group:genkit-callers@example.com"]

grpc_enabled = true

redis_enabled = true
network       = "projects/my-genkit-project/global/networks/default"
subnetwork    = "projects/my-genkit-project/regions/europe-west1/subnetworks/run-egress"
