"""The app `python -m real_estate_api.server` serves (uvicorn imports `main:app`). Settings are validated before the
app exists; a bad one stops start-up."""

import logging
import os
import sys

# gRPC's C core (under pymilvus) writes plain-text lines to stderr; only Python logging may speak, in JSON.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from real_estate_api import logs  # noqa: E402
from real_estate_api.app import create_app  # noqa: E402
from real_estate_api.config import SettingsError, load_settings  # noqa: E402

logs.configure()
try:
    settings = load_settings()
except SettingsError as error:
    logging.getLogger("real_estate_api").critical(f"invalid settings: {error}")
    sys.exit(2)

app = create_app(settings)
