"""Entry point: `uvicorn main:app`. Settings are validated before the app exists; a bad one stops start-up."""

import logging
import sys

from real_estate_api import logs
from real_estate_api.app import create_app
from real_estate_api.config import SettingsError, load_settings

logs.configure()
try:
    settings = load_settings()
except SettingsError as error:
    logging.getLogger("real_estate_api").critical(f"invalid settings: {error}")
    sys.exit(2)

app = create_app(settings)
