# SPDX-License-Identifier: Apache-2.0
terraform {
  # Preconditions and optional object attributes need 1.5; nothing newer is used.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x is the first major with every Cloud Run v2 field used here (direct VPC
      # egress, gRPC probes, deletion_protection); the next major may rename them.
      version = ">= 6.0.0, < 8.0.0"
    }
  }
}
