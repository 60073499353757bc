# SPDX-License-Identifier: Apache-2.0

# --- where and what -----------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that holds the service, its service account and the optional Redis."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits or hyphens), not a project number or name."
  }
}

variable "region" {
  description = "Region of the Cloud Run services and of the Memorystore instance (they must share it for direct VPC egress)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region such as europe-west1, not a zone."
  }
}

variable "service_name" {
  description = "Name of the REST service; the gRPC service, service account and Redis instance are named after it."
  type        = string
  default     = "genkit-endpoints"

  validation {
    # 44, not Cloud Run's 49: the gRPC service adds "-grpc" to it.
    condition     = can(regex("^[a-z]([-a-z0-9]{0,42}[a-z0-9])?$", var.service_name))
    error_message = "service_name must start with a letter, hold lowercase letters, digits and hyphens, end with a letter or digit and be at most 44 characters long."
  }
}

variable "image" {
  description = "Container image, pinned by digest (REGISTRY/REPO/IMAGE@sha256:...), so every revision runs exactly the image that was checked."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[^@\\s]+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: REGISTRY/REPO/IMAGE@sha256:<64 hex digits> (a tag can be moved to another image)."
  }
}

variable "labels" {
  description = "Labels put on every resource the module creates."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys must start with a lowercase letter; keys and values hold lowercase letters, digits, _ and - (at most 63 characters)."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the services (and the Redis instance) until this is set to false and applied."
  type        = bool
  default     = true
}

# --- traffic and scaling ------------------------------------------------------------

variable "ingress" {
  description = "Who can reach the services: all, internal only, or internal plus a Google Cloud load balancer."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "ingress must be INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "invokers" {
  description = "IAM members given roles/run.invoker on the services (user:, group:, serviceAccount:, domain:). Empty: only principals with project-wide rights can call them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.invokers : can(regex("^(user|group|serviceAccount|domain):.+$", m))])
    error_message = "invokers must be IAM members such as user:ada@example.com or serviceAccount:caller@project.iam.gserviceaccount.com; allUsers is the public_access variable's job."
  }
}

variable "public_access" {
  description = "Let anyone call the services without a Google identity (allUsers as invoker). The app's own API_KEYS then does the authentication: set it as a secret."
  type        = bool
  default     = false
}

variable "min_instances" {
  description = "Instances kept running per service; 1 or more avoids cold starts (the model warm-up) at the price of always paying for them."
  type        = number
  default     = 1

  validation {
    condition     = var.min_instances >= 0 && var.min_instances <= 100 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number from 0 to 100."
  }
}

variable "max_instances" {
  description = "Upper bound of instances per service: caps cost and the load on the model provider and Redis (each instance opens up to REDIS_MAX_CONNECTIONS)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 1000."
  }
}

variable "max_concurrency" {
  description = "Requests (an open SSE stream or gRPC stream counts as one for its whole life) Cloud Run sends to one instance at a time; also the app's own in-flight limit."
  type        = number
  default     = 80

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 1000 && floor(var.max_concurrency) == var.max_concurrency
    error_message = "max_concurrency must be a whole number from 1 to 1000 (Cloud Run's limit)."
  }
}

variable "request_timeout_seconds" {
  description = "Longest request Cloud Run lets through, streams included; the app's REQUEST_TIMEOUT (time to the first byte) is kept below it."
  type        = number
  default     = 300

  validation {
    condition     = var.request_timeout_seconds >= 10 && var.request_timeout_seconds <= 3600 && floor(var.request_timeout_seconds) == var.request_timeout_seconds
    error_message = "request_timeout_seconds must be a whole number from 10 to 3600."
  }
}

variable "shutdown_grace_seconds" {
  description = "SHUTDOWN_GRACE: how long in-flight requests may finish after SIGTERM. Cloud Run kills the container 10 s after SIGTERM, so it must stay below that."
  type        = number
  default     = 8

  validation {
    condition     = var.shutdown_grace_seconds >= 1 && var.shutdown_grace_seconds <= 9
    error_message = "shutdown_grace_seconds must be from 1 to 9: Cloud Run sends SIGKILL 10 seconds after SIGTERM."
  }
}

variable "cpu" {
  description = "vCPUs per instance (run one server process per instance; scale with instances)."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.cpu)
    error_message = "cpu must be one of 1, 2, 4, 6 or 8."
  }
}

variable "memory" {
  description = "Memory per instance, e.g. 512Mi or 2Gi."
  type        = string
  default     = "1Gi"

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi)$", var.memory))
    error_message = "memory must be a whole number of Mi or Gi, e.g. 512Mi or 2Gi."
  }
}

variable "cpu_always_allocated" {
  description = "Keep the CPU between requests. The app works outside requests (model warm-up retries, the Redis outage probe, trace export), so the default keeps it."
  type        = bool
  default     = true
}

# --- settings and secrets -----------------------------------------------------------

variable "env" {
  description = "More settings as plain environment variables (see the README's settings table), e.g. { MODEL = \"googleai/gemini-2.5-flash\", TRUSTED_HOSTS = \"api.example.com\" }. Never secrets: those go in secret_env."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "env names must be upper-case settings names such as MODEL or TRUSTED_HOSTS."
  }

  validation {
    # Secret-bearing settings must come from Secret Manager; the rest are set by the
    # module itself, and PORT belongs to Cloud Run.
    condition = length(setintersection(keys(var.env), [
      "API_KEYS", "GEMINI_API_KEY", "OPENAI_API_KEY", "METRICS_KEY", "OTEL_EXPORTER_OTLP_HEADERS",
      "SENTRY_DSN", "REDIS_URL", "RATE_LIMIT_REDIS_URL", "CACHE_REDIS_URL", "CB_REDIS_URL",
      "PORT", "GRPC_PORT", "GRPC_ENABLED", "SHUTDOWN_GRACE", "MAX_CONCURRENT_REQUESTS",
      "GRPC_MAX_CONCURRENT_RPCS", "REQUEST_TIMEOUT", "WORKERS", "TRUSTED_PROXIES",
    ])) == 0
    error_message = "env must not set secrets (API_KEYS, GEMINI_API_KEY, OPENAI_API_KEY, METRICS_KEY, OTEL_EXPORTER_OTLP_HEADERS, SENTRY_DSN, *REDIS_URL: use secret_env) nor the settings the module derives (PORT, GRPC_PORT, GRPC_ENABLED, SHUTDOWN_GRACE, MAX_CONCURRENT_REQUESTS, GRPC_MAX_CONCURRENT_RPCS, REQUEST_TIMEOUT, WORKERS, TRUSTED_PROXIES)."
  }
}

variable "secret_env" {
  description = "Secret settings read from Secret Manager at start-up, by setting name: { API_KEYS = { secret = \"genkit-api-keys\", version = \"3\" } }. The secrets must exist in project_id; the service account may read exactly these."
  type = map(object({
    secret  = string
    version = optional(string, "latest")
  }))
  default = {}

  validation {
    condition = alltrue([for k in keys(var.secret_env) : contains([
      "API_KEYS", "GEMINI_API_KEY", "OPENAI_API_KEY", "METRICS_KEY", "OTEL_EXPORTER_OTLP_HEADERS",
      "SENTRY_DSN", "REDIS_URL", "RATE_LIMIT_REDIS_URL", "CACHE_REDIS_URL", "CB_REDIS_URL",
    ], k)])
    error_message = "secret_env names must be secret-bearing settings: API_KEYS, GEMINI_API_KEY, OPENAI_API_KEY, METRICS_KEY, OTEL_EXPORTER_OTLP_HEADERS, SENTRY_DSN, REDIS_URL, RATE_LIMIT_REDIS_URL, CACHE_REDIS_URL or CB_REDIS_URL."
  }

  validation {
    condition     = alltrue([for v in values(var.secret_env) : can(regex("^[A-Za-z0-9_-]{1,255}$", v.secret)) && can(regex("^(latest|[1-9][0-9]*)$", v.version))])
    error_message = "Each secret_env entry names a secret by its ID (letters, digits, _ or -) and a version: a number, or \"latest\"."
  }
}

variable "trusted_proxies" {
  description = "TRUSTED_PROXIES: addresses whose X-Forwarded-For is believed. Cloud Run's front end connects from a link-local address and writes the caller's address into X-Forwarded-For; check client_ip in the access log after the first deployment."
  type        = list(string)
  default     = ["169.254.0.0/16"]

  validation {
    condition     = alltrue([for c in var.trusted_proxies : can(cidrhost(c, 0))])
    error_message = "trusted_proxies must be CIDR blocks such as 169.254.0.0/16."
  }
}

# --- gRPC ---------------------------------------------------------------------------

variable "grpc_enabled" {
  description = "Also deploy the gRPC service (<service_name>-grpc): the same image and settings, HTTP/2 end to end on the gRPC port. Cloud Run routes one port per service, so REST and gRPC cannot share one."
  type        = bool
  default     = false
}

variable "grpc_port" {
  description = "GRPC_PORT inside the gRPC service; Cloud Run sends its HTTP/2 (h2c) traffic there."
  type        = number
  default     = 50051

  validation {
    condition     = var.grpc_port >= 1024 && var.grpc_port <= 65535 && var.grpc_port != 8080 && var.grpc_port != 8081
    error_message = "grpc_port must be from 1024 to 65535 and neither 8080 (the REST port) nor 8081 (REST inside the gRPC service)."
  }
}

# --- Redis --------------------------------------------------------------------------

variable "redis_enabled" {
  description = "Create a Memorystore for Redis instance and point REDIS_URL at it, so rate limits, the flow cache and the circuit breaker are shared by every instance. Needs network and subnetwork."
  type        = bool
  default     = false
}

variable "network" {
  description = "VPC network (projects/P/global/networks/N) the Redis instance lives in and the services reach it through (direct VPC egress). Required with redis_enabled."
  type        = string
  default     = null

  validation {
    condition     = var.network == null || can(regex("^projects/[^/]+/global/networks/[^/]+$", var.network))
    error_message = "network must be a network ID: projects/PROJECT/global/networks/NAME."
  }
}

variable "subnetwork" {
  description = "Subnetwork (projects/P/regions/R/subnetworks/S) in region whose addresses the instances use for direct VPC egress; size it for max_instances. Required with redis_enabled."
  type        = string
  default     = null

  validation {
    condition     = var.subnetwork == null || can(regex("^projects/[^/]+/regions/[^/]+/subnetworks/[^/]+$", var.subnetwork))
    error_message = "subnetwork must be a subnetwork ID: projects/PROJECT/regions/REGION/subnetworks/NAME."
  }
}

variable "redis_tier" {
  description = "BASIC (one node; an outage or maintenance is a Redis outage the app degrades through) or STANDARD_HA (a replica with automatic failover)."
  type        = string
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "redis_tier must be BASIC or STANDARD_HA."
  }
}

variable "redis_memory_size_gb" {
  description = "Memorystore capacity in GiB (cache entries, rate-limit windows and breaker state)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300 && floor(var.redis_memory_size_gb) == var.redis_memory_size_gb
    error_message = "redis_memory_size_gb must be a whole number from 1 to 300."
  }
}

variable "redis_version" {
  description = "Memorystore Redis version."
  type        = string
  default     = "REDIS_7_2"

  validation {
    condition     = can(regex("^REDIS_[0-9]+_[0-9]+$", var.redis_version))
    error_message = "redis_version must look like REDIS_7_2."
  }
}
