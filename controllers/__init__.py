from . import health
