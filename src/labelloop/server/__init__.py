"""The review web app and team server: review UI, REST API, Label Studio ML backend, auth."""

from .app import create_app, run

__all__ = ["create_app", "run"]
