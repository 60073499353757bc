# SPDX-License-Identifier: Apache-2.0
"""The limits of an image download, apart from the downloader: the settings build them,
and reading the settings (``--help``, a bad flag) must not import the HTTP client."""

from __future__ import annotations

from dataclasses import dataclass

from genkit_endpoints.security.addresses import parse_networks

__all__ = ["DEFAULT_IMAGE_TYPES", "IMAGE_TYPE_NAMES", "ImageFetchConfig"]

DEFAULT_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# The image types the downloader can recognise by their first bytes, with their names.
IMAGE_TYPE_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF",
                    "image/webp": "WebP", "image/avif": "AVIF", "image/heic": "HEIC",
                    "image/heif": "HEIF"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImageFetchConfig:
    """Limits of one download. ``timeout`` bounds all of it: DNS, every hop, the body."""

    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 10.0
    connect_timeout: float = 3.0
    max_redirects: int = 3
    allowed_networks: tuple[str, ...] = ()  # CIDRs exempt from the address check
    content_types: tuple[str, ...] = DEFAULT_IMAGE_TYPES

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must not be negative")
        unknown = [t for t in self.content_types if t not in IMAGE_TYPE_NAMES]
        if unknown or not self.content_types:
            raise ValueError(
                f"content_types must be among {sorted(IMAGE_TYPE_NAMES)}, got {unknown}"
            )
        parse_networks(self.allowed_networks)
