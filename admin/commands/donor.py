"""`conectades donor`: a data subject's donations (export, erase) and the contact
keys (rotate-keys, new-keys)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
import typer

from admin.common import (
    JsonOpt,
    keyring_from_env,
    purge_after_admin_write,
)
from admin.runtime import (
    CliError,
    Target,
    admin_connection,
    audit,
    echo,
    emit_json,
    err,
    fail,
    out,
    raise_cli,
    run,
)
from db.contact_keys import ResealResult, reseal
from db.crypto import Keyring, UnreadableValue, new_key
from db.queries import donors as dq

donor_app = typer.Typer(
    help="A donor's personal data across every tenant (LGPD/GDPR requests).",
    no_args_is_help=True,
)

ContactArg = Annotated[
    str,
    typer.Option(
        "--contact",
        help="The donor's contact as given (e-mail or phone; trimmed, case-insensitive).",
    ),
]


_SEALED_COLUMNS = ("tenant_id", "donor_contact_enc", "message_enc")


def _donation_dict(row: asyncpg.Record, ring: Keyring) -> dict[str, Any]:
    out = {
        k: (str(v) if isinstance(v, UUID) else v)
        for k, v in dict(row).items()
        if k not in _SEALED_COLUMNS
    }
    out["donor_contact"] = ring.donor_contact_of(row)
    out["message"] = ring.message_of(row)
    return out


@donor_app.command("export")
def donor_export(contact: ContactArg) -> None:
    """Every donation of the person with this contact, in every tenant, as JSON."""
    if not contact.strip():
        raise_cli("--contact must not be empty")
    ring = keyring_from_env()

    async def go() -> list[dict[str, Any]]:
        async with admin_connection() as conn:
            rows = await dq.select_by_contact(
                conn, contact=contact, contact_hashes=ring.contact_hashes(contact)
            )
        try:
            return [_donation_dict(r, ring) for r in rows]
        except UnreadableValue as exc:
            raise CliError(str(exc)) from None

    found = run(go())
    audit("donor.export", donations=len(found))  # never the contact itself
    emit_json({"donations": found})


@donor_app.command("erase")
def donor_erase(
    contact: ContactArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Erase the name, contact and message of every donation of the person with this
    contact, in every tenant; quantities and totals stay. Audit-logged (counts only)."""
    if not contact.strip():
        raise_cli("--contact must not be empty")
    if not yes and not typer.confirm("Erase this person's name, contact and messages?"):
        raise_cli("nothing was erased")

    contact_hashes = keyring_from_env().contact_hashes(contact)

    async def go() -> dict[UUID, int]:
        async with admin_connection() as conn, conn.transaction():
            return await dq.erase_by_contact(conn, contact=contact, contact_hashes=contact_hashes)

    erased = run(go())
    audit(
        "donor.erase",
        Target(list(erased) or [None]),
        donations=sum(erased.values()),
        tenant_ids=[str(t) for t in erased],
    )
    for tenant_id in erased:  # cached partner reads and public pages showed them
        purge_after_admin_write(tenant_id)
    if as_json:
        emit_json({"donations": sum(erased.values()), "tenants": len(erased)})
    else:
        out.print(f"erased {sum(erased.values())} donations in {len(erased)} tenants")


@donor_app.command("rotate-keys")
def donor_rotate_keys(
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per transaction.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Seal every donation's contact and message under the newest key of
    CONECTADES_CONTACT_KEYS (the first listed): rows sealed under an older key, and
    rows still in plaintext from before migration 0018; and the stored answers of
    idempotent requests sealed under an older key. Rewrite every lookup hash that is
    not under the first key of CONECTADES_CONTACT_HMAC_KEY. Safe while the API serves.
    Afterwards the older keys can be removed. Exit status 1 if a row cannot be opened
    with the listed keys (it is named, and left as it is)."""
    ring = keyring_from_env()

    async def go() -> ResealResult:
        async with admin_connection() as conn:
            return await reseal(conn, ring, batch=batch)

    result = run(go())
    audit("donor.rotate_keys", key=ring.newest, **result.as_dict())
    if as_json:
        emit_json({**result.as_dict(), "key": ring.newest})
    else:
        out.print(
            f"scanned {result.scanned} donations: {result.encrypted} encrypted (were "
            f"plaintext), {result.rotated} re-encrypted under key {ring.newest}, "
            f"{result.rehashed} lookup hashes rewritten under the first HMAC key, "
            f"{result.skipped} changed meanwhile (left as written); "
            f"{result.answers} stored answers re-encrypted"
        )
    if result.answers_unreadable:
        err.print(
            f"{result.answers_unreadable} stored answers of idempotent requests could not "
            "be opened with the listed keys: a replay of those requests answers 409 until "
            "they expire (CONECTADES_IDEMPOTENCY_TTL)"
        )
    for line in result.unreadable[:20]:
        err.print(f"[bold red]unreadable:[/] {line}", markup=True)
    if result.unreadable:
        fail(f"{len(result.unreadable)} donations could not be opened with the listed keys")


@donor_app.command("new-keys")
def donor_new_keys() -> None:
    """Print a fresh CONECTADES_CONTACT_KEYS (key id 1) and CONECTADES_CONTACT_HMAC_KEY
    for a new deployment (to add a key to an existing list, see docs/privacy.md)."""
    echo(f"CONECTADES_CONTACT_KEYS=1:{new_key()}")
    echo(f"CONECTADES_CONTACT_HMAC_KEY={new_key()}")
