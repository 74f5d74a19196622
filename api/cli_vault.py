"""`oo vault`: the token vault's keys.

Rotating a key: put `oo vault new-key` at the front of OO_VAULT_KEYS (keep the old keys after
it), restart the service so new tokens are sealed under it, run `oo vault rotate`, and once it
reports no failures remove the old keys from OO_VAULT_KEYS.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from api.cli_common import DatabaseOption, ready_database
from api.settings import Settings
from bandit.store import make_engine
from integrations.token_store import TokenStore
from integrations.vault import ENV_VAR, RotationReport, Vault, VaultConfigError, new_key_entry
from notifier.endpoints import PushServices
from notifier.outbox import Outbox
from notifier.subscriptions import SubscriptionStore

vault_app = typer.Typer(help="Token vault: keys and rotation.", no_args_is_help=True)


@vault_app.command("new-key")
def new_key(
    kid: Annotated[
        str | None, typer.Option(help="Key id; default is today's date, like k20261125")
    ] = None,
) -> None:
    """Print a fresh `kid:base64key` entry to put at the front of OO_VAULT_KEYS."""
    try:
        typer.echo(new_key_entry(kid))
    except VaultConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kid") from None


@vault_app.command("rotate")
def rotate(
    database_url: DatabaseOption = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per query")] = 500,
) -> None:
    """Re-encrypt every stored provider token under the newest key in OO_VAULT_KEYS."""
    console = Console(stderr=True)
    try:
        # Rotation needs the operator's key list; a local-mode key file is never rotated.
        vault = Vault.from_env()
    except VaultConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    engine = make_engine(ready_database(database_url or Settings().database), pool_size=1)
    store = TokenStore(engine, vault)
    try:
        with Progress(
            TextColumn("rotating to key {task.fields[kid]}"),
            TextColumn("{task.completed:,} tokens checked"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("rotate", total=None, kid=vault.current_key_id)

            def advance(report: RotationReport) -> None:
                progress.update(task, completed=report.seen)

            report = store.rotate(batch=batch, on_progress=advance)
        # Push subscriptions and unsent push payloads are sealed by the same vault (ADR 0012).
        devices = SubscriptionStore(engine, lambda: vault, PushServices())
        pushes = [devices.rotate(), Outbox(engine, devices).rotate()]
    finally:
        engine.dispose()
    for name, sealed in zip(("push devices", "unsent pushes"), pushes, strict=True):
        console.print(
            f"{name}: {sealed.rotated:,} re-encrypted, {sealed.current:,} already current"
            + (f", [red]{len(sealed.failed):,} could not be opened[/red]" if sealed.failed else "")
        )
    console.print(
        f"{report.rotated:,} re-encrypted under {vault.current_key_id!r}, "
        f"{report.current:,} already current, {report.skipped:,} changed meanwhile"
    )
    if any(sealed.failed for sealed in pushes) and not report.failed:
        raise typer.Exit(1)
    if report.failed:
        for principal, provider in report.failed[:20]:
            console.print(f"[red]cannot open[/red] {provider} token of {principal}")
        console.print(
            f"[red]{len(report.failed):,} tokens could not be opened with any key in {ENV_VAR}; "
            "keep the old keys until they are reconnected or deleted[/red]"
        )
        raise typer.Exit(1)
