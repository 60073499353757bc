# SPDX-License-Identifier: Apache-2.0
"""``python -m endpoints_hello``."""

import sys

from endpoints_hello.main import main

sys.exit(main())
