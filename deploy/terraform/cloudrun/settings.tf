# SPDX-License-Identifier: Apache-2.0
#
# What each service runs with, derived from the variables alone (no resource): its
# port, protocol, flags and plain settings. Kept apart so the tests can evaluate it
# with `terraform console` offline and check the result against the kit's settings.

locals {
  # Names of what the module creates, within each kind's own length limit whatever
  # service_name's length (1-44): service accounts 6-30, Memorystore instances 40.
  names = {
    service_account = "${substr(var.service_name, 0, 23)}-runner"
    redis           = "${substr(var.service_name, 0, 34)}-redis"
    redis_secret    = "${var.service_name}-redis-url"
  }

  rest_port = 8080
  # Cloud Run sets PORT to the container port. In the gRPC service that is the gRPC port,
  # so the REST listener (which the process always runs) is moved aside by a flag, which
  # outranks PORT. Nothing routes to it; it stays inside the container.
  grpc_service_rest_port = 8081

  # Settings the module derives from Cloud Run's own limits, on top of the caller's.
  common_env = merge(var.env, {
    # Cloud Run sends SIGKILL 10 s after SIGTERM: the drain must end before that.
    SHUTDOWN_GRACE = tostring(var.shutdown_grace_seconds)
    # The app's time-to-first-byte deadline fires before Cloud Run cuts the request,
    # so the caller gets a problem+json 504 instead of a bare gateway error.
    REQUEST_TIMEOUT = tostring(min(120, var.request_timeout_seconds - 5))
    TRUSTED_PROXIES = join(",", var.trusted_proxies)
    # One process per instance; Cloud Run scales instances instead.
    WORKERS = "1"
  })

  # Probes carry a Host header the TRUSTED_HOSTS allowlist accepts (its first exact name);
  # without an allowlist any well-formed host passes and none is sent.
  trusted_hosts = [for h in split(",", lookup(var.env, "TRUSTED_HOSTS", "")) : trimspace(h) if trimspace(h) != ""]
  probe_host    = try([for h in local.trusted_hosts : h if !startswith(h, "*.")][0], null)

  services = merge(
    {
      rest = {
        name = var.service_name
        # HTTP/1.1 between Cloud Run and the container: the REST servers speak nothing else.
        port_name = "http1"
        port      = local.rest_port
        args      = []
        probe     = "http"
        env = {
          GRPC_ENABLED            = "false" # no port of this service could reach it
          MAX_CONCURRENT_REQUESTS = tostring(var.max_concurrency)
        }
      }
    },
    var.grpc_enabled ? {
      grpc = {
        name = "${var.service_name}-grpc"
        # h2c: HTTP/2 cleartext end to end, which gRPC needs (TLS ends at Cloud Run).
        port_name = "h2c"
        port      = var.grpc_port
        args      = ["--port", tostring(local.grpc_service_rest_port)]
        probe     = "grpc"
        env = {
          GRPC_ENABLED             = "true"
          GRPC_PORT                = tostring(var.grpc_port)
          GRPC_MAX_CONCURRENT_RPCS = tostring(var.max_concurrency)
        }
      }
    } : {},
  )
}

