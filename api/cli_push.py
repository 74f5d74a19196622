"""`oo notifier` (the process that sends pushes) and `oo push new-keys` (the VAPID key pair)."""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated

import typer

push_app = typer.Typer(help="Web Push: the deployment's VAPID keys.", no_args_is_help=True)


@push_app.command("new-keys")
def new_keys(
    subject: Annotated[
        str,
        typer.Option(help="How push services reach you: mailto:you@example.com or https://…"),
    ],
) -> None:
    """Print a fresh VAPID key pair as OO_VAPID_PRIVATE_KEY and OO_VAPID_SUBJECT lines.

    One pair per deployment: browsers subscribe with its public key, so replacing it later
    means every device subscribes again.
    """
    from notifier.vapid import VapidConfigError, VapidKey

    try:
        key = VapidKey.generate(subject)
    except VapidConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--subject") from None
    typer.echo(f"OO_VAPID_PRIVATE_KEY={key.private_text}")
    typer.echo(f"OO_VAPID_SUBJECT={subject}")
    typer.echo(f"# public key (GET /v1/push/key serves it): {key.public_key}", err=True)


def notifier(
    port: Annotated[
        int, typer.Option(help="Port of the notifier's /health and /metrics (OO_NOTIFIER_PORT)")
    ] = int(os.environ.get("OO_NOTIFIER_PORT", "8002")),
    host: Annotated[str, typer.Option(help="Bind address of /health")] = "127.0.0.1",
) -> None:
    """Decide when to push tips and send what the outbox holds (one per deployment; `oo serve`
    runs it as a thread)."""
    from api.cli_common import configure_logging, ready_database, settings_or_exit
    from api.notifier_process import run_notifier
    from api.settings import Settings
    from notifier.push import PushNotConfigured
    from notifier.settings import PushSettings

    configure_logging()
    # The services an api process holds (models refreshed, no learner): the timing pass decides
    # with them; the sending loop and the decision points run here, not on a thread of them.
    settings = settings_or_exit(Settings, {"role": "api"})
    push = settings_or_exit(PushSettings)
    ready_database(settings.database)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        run_notifier(stop, settings=settings, push_settings=push, host=host, port=port)
    except PushNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
