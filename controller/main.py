"""dstack-controller: serve, and manage join/API tokens on the same data dir."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys
import time
from pathlib import Path

from dstack_hybrid.shared.ca_discovery import split_address
from dstack_hybrid.shared.version import VERSION

from controller import datadir
from controller.backends.config import ControllerFileConfig
from controller.configs.loader import ConfigError
from controller.images.platforms import LookupSettings
from controller.logs.cap import parse_cap
from controller.rate_limit import ClientRate, client_rate
from controller.roles import DEFAULT_API_ROLE, Role
from controller.server.ports import ListenError
from controller.settings import (
    DEFAULT_CLIENT_RATE,
    DEFAULT_LISTEN,
    DEFAULT_MAX_PENDING_PER_TOKEN,
    ControllerSettings,
    default_agent_listen,
    default_data_dir,
    default_database_url,
    load_controller_file,
)
from controller.store import FULL, StorageError, Store, StoreURLError, open_store, sqlite_path
from controller.tls import load_ca
from controller.tokens import create_token, parse_duration


class UsageError(Exception):
    """Bad input: one sentence, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dstack-controller", description="The dstack-hybrid controller.")
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the controller")
    _data_args(serve)
    # Defaults are resolved in cmd_serve: a flag, else the environment, else the config file.
    serve.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the config file (default: DATA_DIR/config.yaml, else /etc/dstack/controller.yaml, when present)",
    )
    serve.add_argument("--listen", default=None, help=f"client API, HOST:PORT (default {DEFAULT_LISTEN})")
    serve.add_argument(
        "--agent-listen", default=None, help="agents' streams, mutual TLS (default: the --listen port plus one)"
    )
    serve.add_argument("--insecure", action="store_true", help="plaintext gRPC, no TLS (warns at every start)")
    serve.add_argument("--host-cert-validity", default=None, help="lifetime of host certificates (default 24h)")
    serve.add_argument("--tls-san", action="append", default=[], help="another name or IP for the server certificate")
    serve.add_argument("--host-grace", default=None, help="hosts not heard from for this long are offline (40s)")
    serve.add_argument(
        "--host-lost-after",
        default=None,
        help="hosts not heard from for this long are lost: their tasks end failed with the reason "
        "'host NAME lost (last heard HH:MM:SS)', a UTC time, and free what they held "
        "(5m; not shorter than --host-grace)",
    )
    serve.add_argument("--heartbeat-interval", default=None, help="how often agents send a heartbeat (10s)")
    serve.add_argument("--stop-grace", default=None, help="SIGTERM, then SIGKILL after this long (10s)")
    serve.add_argument(
        "--log-cap", default=None, help="log kept per task; beyond it the oldest lines are dropped (100MiB)"
    )
    serve.add_argument(
        "--log-retention", default=None, help="a finished task's log is deleted this long after it ended (7d)"
    )
    serve.add_argument(
        "--image-lookup",
        choices=["on", "off"],
        default=None,
        help="ask registries which platforms an image has (off: rely on the agents' check)",
    )
    serve.add_argument(
        "--registry-mirror",
        default=None,
        help="look Docker Hub images up at this registry instead, e.g. http://127.0.0.1:5000",
    )

    serve.add_argument(
        "--client-rate",
        default=None,
        help=f"calls one API token may make: N/s, N/m, N/h or off (default {DEFAULT_CLIENT_RATE}); "
        "past it a call is refused with RESOURCE_EXHAUSTED and says when to retry",
    )
    serve.add_argument(
        "--client-burst",
        default=None,
        help="calls one API token may make at once before --client-rate applies (default: five seconds' worth)",
    )
    serve.add_argument(
        "--max-pending-per-token",
        default=None,
        help=f"tasks of one API token that may wait for placement; a submit past it is refused "
        f"(default {DEFAULT_MAX_PENDING_PER_TOKEN}; off for no cap)",
    )

    token = sub.add_parser("token", help="join and API tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="create a token and print it")
    _data_args(create)
    create.add_argument("--kind", choices=["join", "api"], default="join")
    create.add_argument("--ttl", default=None, help="lifetime, e.g. 1h (join default 1h; api default none)")
    create.add_argument("--uses", type=int, default=None, help="how many registrations (join tokens only; default 1)")
    create.add_argument("--fleet", default="", help="hosts registering with it join this fleet (join tokens only)")
    create.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=None,
        help=f"an API token's role: user (tasks; the default) or admin (also fleets, volumes, backends, hosts)"
        f" [default: {DEFAULT_API_ROLE}]",
    )
    create.add_argument(
        "--description", default="", help="free text shown by `token list` and on the tasks the token submits"
    )
    lst = tsub.add_parser("list", help="list tokens")
    _data_args(lst)
    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    _data_args(revoke)
    revoke.add_argument("id")

    ci = sub.add_parser("cloud-init", help="print user-data that installs and joins an agent (creates a join token)")
    _data_args(ci)
    ci.add_argument("--fleet", required=True, help="the VM's host joins this fleet")
    ci.add_argument("--ttl", default="1h", help="lifetime of the single-use join token")
    ci.add_argument(
        "--controller",
        default=os.environ.get("DSTACK_CONTROLLER_LISTEN", DEFAULT_LISTEN),
        help="the address the VM dials, HOST:PORT (default: the listen address; pass the public one)",
    )
    pkg = ci.add_mutually_exclusive_group()
    pkg.add_argument(
        "--package-url",
        default="",
        help="download the .deb/.rpm from this http(s) URL; {arch} in it becomes the VM's package "
        "architecture there (amd64/arm64 for a .deb, x86_64/aarch64 for an .rpm)",
    )
    pkg.add_argument("--package-path", default="", help="install the package the image holds at this path")
    ci.add_argument("--region", default="", help="the agent's region")
    ci.add_argument("--zone", default="", help="the agent's zone")
    ci.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a host label (repeatable)")
    return p


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--database-url", default=None)


def _open_serving(data_dir: Path, database_url: str | None) -> tuple[str, Store, int]:
    """`serve`: makes the data dir when it is new and locks it before anything in it is opened
    or written; returns the lock's descriptor, to be held while serving."""
    url = database_url or default_database_url(data_dir)
    try:
        # A database elsewhere is opened first: a bad URL then changes nothing. It writes nothing in
        # the data dir, which is still locked: the CA and admin token there are this process's own.
        store = open_store(url) if sqlite_path(url) is None else None
        datadir.prepare(data_dir)
        lock = datadir.lock(data_dir)
        return url, store or open_store(url), lock
    except StoreURLError as exc:
        raise UsageError(str(exc)) from None


def _check_ports(data_dir: Path, addresses: list[str]) -> None:
    """Before the data dir is made or written: a taken port is refused, and when a controller
    serves this data dir that is the reason given (it names the pid)."""
    from controller.server.ports import check

    for address in addresses:
        try:
            check(address)
        except ListenError:
            holder = datadir.served_by(data_dir)
            if holder is not None:
                raise datadir.DataDirError(datadir.busy(data_dir, holder)) from None
            raise


def _open_existing(args: argparse.Namespace) -> tuple[Path, str, Store]:
    """`token` and `cloud-init`: the data dir and database of a controller that was started
    before; nothing is created (a token for a controller that does not exist is worse than none)."""
    found = datadir.find(args.data_dir)
    if found.note:
        logging.getLogger("dstack.controller").warning("%s", found.note)
    data_dir = found.data_dir
    url = args.database_url or os.environ.get("DSTACK_DATABASE_URL") or found.database_url
    url = url or default_database_url(data_dir)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise UsageError(
            f"no controller database at {path}: start `dstack-controller serve` with this data dir first, "
            "or pass the --database-url it serves with"
        )
    try:
        return data_dir, url, open_store(url, create=False)
    except StoreURLError as exc:
        raise UsageError(str(exc)) from None


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _setting(flag_value: str | None, env: str, file_value: str | None, default: str) -> str:
    if flag_value is not None:
        return flag_value
    return os.environ.get(env) or file_value or default


def _count(text: str, named: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{named}: {text!r} is not a whole number") from None
    if value < 1:
        raise UsageError(f"{named}: {value} is less than 1")
    return value


def _client_limits(
    args: argparse.Namespace, file_config: ControllerFileConfig, where: str
) -> tuple[ClientRate | None, int | None]:
    """--client-rate/--client-burst and --max-pending-per-token, else the config file's keys."""
    rate_text = _setting(args.client_rate, "", file_config.client_rate, DEFAULT_CLIENT_RATE)
    rate_named = "--client-rate" if args.client_rate is not None else f"client_rate{where}"
    burst: int | None = None
    if args.client_burst is not None:
        burst = _count(args.client_burst, "--client-burst")
    elif file_config.client_burst is not None:
        burst = _count(str(file_config.client_burst), f"client_burst{where}")
    try:
        rate = client_rate(rate_text, burst)
    except ValueError as exc:
        raise UsageError(f"{rate_named}: {exc}") from None
    if rate is None and burst is not None:
        raise UsageError("a client burst has no effect with the client rate off: drop one of them")
    pending_text = _setting(
        args.max_pending_per_token, "", file_config.max_pending_per_token, str(DEFAULT_MAX_PENDING_PER_TOKEN)
    )
    pending_named = (
        "--max-pending-per-token" if args.max_pending_per_token is not None else f"max_pending_per_token{where}"
    )
    pending = None if pending_text.strip().lower() == "off" else _count(pending_text, pending_named)
    return rate, pending


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.server.app import ensure_admin_token, serve

    data_dir: Path = args.data_dir or default_data_dir()
    try:
        config_path, file_config = load_controller_file(args.config, data_dir)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    where = f" ({config_path})" if config_path else ""
    host_grace = _duration(_setting(args.host_grace, "", file_config.host_grace, "40s"), f"host_grace{where}")
    lost_after = _duration(
        _setting(args.host_lost_after, "", file_config.host_lost_after, "5m"), f"host_lost_after{where}"
    )
    if lost_after < host_grace:
        named = "--host-lost-after" if args.host_lost_after is not None else f"host_lost_after{where}"
        raise UsageError(
            f"{named} ({lost_after:g}s) must not be shorter than the host grace ({host_grace:g}s): "
            "a host is offline before it is lost"
        )
    heartbeat = _duration(
        _setting(args.heartbeat_interval, "", file_config.heartbeat_interval, "10s"), f"heartbeat_interval{where}"
    )
    stop_grace = _duration(_setting(args.stop_grace, "", file_config.stop_grace, "10s"), f"stop_grace{where}")
    log_retention = _duration(
        _setting(args.log_retention, "", file_config.log_retention, "7d"), f"log_retention{where}"
    )
    log_cap_text = _setting(args.log_cap, "", file_config.log_cap, "100MiB")
    try:
        log_cap = parse_cap(log_cap_text)
    except ValueError as exc:
        raise UsageError(f"{'--log-cap' if args.log_cap is not None else f'log_cap{where}'}: {exc}") from None
    cert_validity = _duration(
        _setting(args.host_cert_validity, "", file_config.host_cert_validity, "24h"), f"host_cert_validity{where}"
    )
    listen = _setting(args.listen, "DSTACK_CONTROLLER_LISTEN", file_config.listen, DEFAULT_LISTEN)
    agent_listen = _setting(args.agent_listen, "DSTACK_CONTROLLER_AGENT_LISTEN", file_config.agent_listen, "")
    image_lookup = _setting(args.image_lookup, "DSTACK_IMAGE_LOOKUP", file_config.image_lookup, "on")
    mirror = _setting(args.registry_mirror, "DSTACK_REGISTRY_MIRROR", file_config.registry_mirror, "")
    if image_lookup not in ("on", "off"):
        raise UsageError(f"DSTACK_IMAGE_LOOKUP must be on or off, not {image_lookup!r}")
    for flag, address in (("--listen", listen), ("--agent-listen", agent_listen)):
        if address:
            try:
                split_address(address)
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
    burst_address = file_config.burst.controller_address
    if burst_address:
        try:
            split_address(burst_address)
        except ValueError as exc:
            raise UsageError(f"burst.controller_address{where}: {exc}") from None
    rate, max_pending = _client_limits(args, file_config, where)
    agent_listen = agent_listen or default_agent_listen(listen)
    _check_ports(data_dir, [listen] if args.insecure else [listen, agent_listen])
    url, store, lock = _open_serving(data_dir, args.database_url)
    settings = ControllerSettings(
        data_dir=data_dir,
        database_url=url,
        listen=listen,
        host_grace_s=host_grace,
        host_lost_after_s=lost_after,
        heartbeat_interval_s=max(1, int(heartbeat)),
        stop_grace_s=int(stop_grace),
        log_cap=log_cap,
        log_retention_s=log_retention,
        image_lookup=LookupSettings(enabled=image_lookup == "on", docker_hub_mirror=mirror),
        agent_listen=agent_listen,
        insecure=args.insecure,
        host_cert_validity_s=cert_validity,
        tls_sans=[*file_config.tls_san, *args.tls_san],
        file_config=file_config,
        config_path=config_path,
        client_rate=rate,
        max_pending_per_token=max_pending,
    )
    log = logging.getLogger("dstack.controller")
    log.info("data dir %s, database %s", data_dir, url)
    if ensure_admin_token(store, settings.admin_token_path):
        log.info("created the admin API token in %s (mode 0600)", settings.admin_token_path)
    else:
        log.info("admin API token is in %s", settings.admin_token_path)
    try:
        asyncio.run(serve(settings, store))
    finally:
        os.close(lock)  # the kernel would drop it at exit anyway; said here so the fd is visibly held
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    data_dir, _, store = _open_existing(args)
    if args.token_command == "create":
        if args.uses is not None and args.uses < 1:
            raise UsageError("--uses must be at least 1")
        if args.role is not None and args.kind != "api":
            raise UsageError("--role is for API tokens (--kind api): a join token only registers a host")
        if args.kind == "api":
            # Join-token settings: an API token is not spent by use and is not tied to a fleet.
            for flag, given in (("--uses", args.uses is not None), ("--fleet", bool(args.fleet))):
                if given:
                    raise UsageError(
                        f"{flag} is for join tokens: an API token is used for every call until it expires "
                        "(--ttl) or is revoked, and may submit to any fleet"
                    )
        role = (Role(args.role) if args.role else DEFAULT_API_ROLE) if args.kind == "api" else None
        ttl: float | None
        if args.kind == "join":
            ttl = _duration(args.ttl or "1h", "--ttl")
            uses = args.uses if args.uses is not None else 1
        else:
            ttl = _duration(args.ttl, "--ttl") if args.ttl else None
            uses = args.uses
        fingerprint = load_ca(data_dir)[0].fingerprint if args.kind == "join" else ""
        _, text = create_token(
            store,
            args.kind,
            ttl_s=ttl,
            uses=uses,
            fleet=args.fleet,
            ca_fingerprint=fingerprint,
            role=role,
            description=args.description,
        )
        print(text)
        return 0
    if args.token_command == "list":
        now = time.time()
        header = f"{'ID':<10} {'KIND':<5} {'ROLE':<6} {'FLEET':<12} {'USES LEFT':<10} {'EXPIRES':<22} {'STATUS':<8}"
        print(f"{header} DESCRIPTION")
        for t in store.list_tokens():
            status = (
                "revoked"
                if t.revoked
                else (
                    "expired"
                    if t.expires_at is not None and t.expires_at <= now
                    else ("used" if t.uses_left == 0 else "active")
                )
            )
            expires = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.expires_at)) if t.expires_at else "never"
            uses = "unlimited" if t.uses_left is None else str(t.uses_left)
            role_word = str(t.role) if t.role else "-"
            line = f"{t.id:<10} {t.kind:<5} {role_word:<6} {t.fleet or '-':<12} {uses:<10} {expires:<22} {status:<8} "
            print((line + (t.description or "-")).rstrip())
        return 0
    if not store.revoke_token(args.id):
        raise UsageError(f"no token with id {args.id!r} (see dstack-controller token list)")
    print(f"revoked {args.id}")
    return 0


def cmd_cloud_init(args: argparse.Namespace) -> int:
    from controller.cloudinit import check_inputs, render_user_data

    try:
        host, _ = split_address(args.controller)
    except ValueError as exc:
        raise UsageError(f"--controller: {exc}") from None
    if host in ("", "0.0.0.0", "::"):
        raise UsageError(f"--controller: {args.controller} is a listen address; pass the address the VM dials")
    ttl = _duration(args.ttl, "--ttl")
    labels: dict[str, str] = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--label: expected KEY=VALUE, got {item!r}")
        labels[key] = value
    extra: dict[str, object] = {"region": args.region or None, "zone": args.zone or None, "labels": labels}
    try:  # before the token exists, so bad input spends none
        check_inputs(args.controller, args.fleet, args.package_url, args.package_path, extra)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if host in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger("dstack.controller").warning(
            "the user-data dials %s, a loopback address: pass --controller with the address the VM reaches",
            args.controller,
        )
    data_dir, _, store = _open_existing(args)
    fingerprint = load_ca(data_dir)[0].fingerprint
    _, text = create_token(store, "join", ttl_s=ttl, uses=1, fleet=args.fleet, ca_fingerprint=fingerprint)
    print(render_user_data(args.controller, text, args.fleet, args.package_url, args.package_path, extra), end="")
    return 0


def _os_error(exc: OSError) -> str:
    """One sentence for an environment failure (the file it concerns, not Python's errno tuple)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FULL + (f" (writing {exc.filename})" if exc.filename else "")
    if exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror.lower()}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "cloud-init":
            return cmd_cloud_init(args)
        return cmd_token(args)
    except UsageError as exc:
        print(f"dstack-controller: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"dstack-controller: {exc}", file=sys.stderr)
        return exc.status
    except datadir.DataDirError as exc:
        print(f"dstack-controller: {exc}", file=sys.stderr)
        return exc.status
    except StorageError as exc:
        logging.getLogger("dstack.controller").debug("storage: %s", exc.detail)
        print(f"dstack-controller: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dstack-controller: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
