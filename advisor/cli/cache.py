"""``advisor cache info`` and ``advisor cache clear``: show or empty the activation cache
(advisor.context.cache.ActivationCache)."""

from __future__ import annotations

import sys

from advisor.cli import _common

HELP = "show or empty the activation cache"
PARENTS = ()
DESCRIPTION = ("The on-disk activation cache that train and search fill: its folder "
               "($ADVISOR_CACHE, default ~/.cache/advisor/activations) is capped at "
               "$ADVISOR_CACHE_MAX (default 20G); the least recently used entries make "
               "room for new ones.")


def options(c) -> None:
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=_common.Parser)
    csub.required = True
    ci = csub.add_parser("info", help="the folder, its size and cap, and every entry",
                         description="Print the cache folder, its entries, their total size and the cap, and "
                                     "per entry its kind, block, rows done, size and when it was last used.")
    _common.add_cache_dir(ci)
    ci.add_argument("--json", metavar="PATH", nargs="?", const="-", default=None,
                    help="print JSON instead of the table (or write it to PATH)")
    ci.set_defaults(func=run_info)
    cc = csub.add_parser("clear", help="remove entries (all by default)",
                         description="Remove cache entries: all, or those last used before --older-than, or "
                                     "those whose key starts with --key. Entries in use by a running train or "
                                     "search are kept and listed.")
    _common.add_cache_dir(cc)
    cc.add_argument("--older-than", metavar="AGE", default=None,
                    help="only entries last used more than AGE ago: 90s, 30m, 12h, 7d or plain seconds")
    cc.add_argument("--key", metavar="PREFIX", action="append", default=[],
                    help="only the entry whose key starts with PREFIX, as 'cache info' shows it (repeatable)")
    cc.set_defaults(func=run_clear)


def _open_cache(args):
    from advisor.context.cache import ActivationCache, default_cache_dir

    root = args.cache_dir or default_cache_dir()
    cache = ActivationCache(root)  # reads $ADVISOR_CACHE_MAX: a bad value is one line here too
    if cache.root.exists() and not cache.root.is_dir():
        raise _common.usage(f"--cache-dir {cache.root} is a file", "pass the cache folder")
    return cache


def run_info(args) -> int:
    import json
    import os

    from advisor.context.cache import format_size
    from advisor.report.run_tables import cache_table
    from advisor.report.terminal import make_console, print_view

    cache = _open_cache(args)
    if args.json and args.json != "-":
        from advisor.outputs import check_outputs

        check_outputs(("--json", args.json))
    entries = cache.entries()
    bad = [e for e in entries if e.get("bad")]
    if bad:  # shown (with '?' where meta.json says nothing usable), never trusted, and removable
        sys.stderr.write(f"advisor: warning: {_n_entries(len(bad))} unusable ({bad[0]['key'][:12]}: {bad[0]['bad']}"
                         f"{f'; and {len(bad) - 1} more' if len(bad) > 1 else ''}); advisor cache clear --key "
                         f"{bad[0]['key'][:12]} removes one, training recomputes it\n")
    total = sum(e["bytes"] for e in entries)
    cap_from = "ADVISOR_CACHE_MAX" if os.environ.get("ADVISOR_CACHE_MAX", "").strip() else "default"
    if args.json:
        doc = {"root": str(cache.root), "entries": len(entries), "total_bytes": total,
               "disk_bytes": sum(e["disk_bytes"] for e in entries), "cap_bytes": cache.max_total,
               "cap_from": cap_from, "items": entries}
        text = json.dumps(doc, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            from advisor.outputs import write_text

            write_text(args.json, text, "--json")
            sys.stdout.write(f"wrote {args.json}\n")
        return 0
    console = make_console()
    console.print(f"activation cache {cache.root}")
    console.print(f"{_n_entries(len(entries))}, {format_size(total)} "
                  f"({format_size(sum(e['disk_bytes'] for e in entries))} on disk) "
                  f"of a {format_size(cache.max_total)} cap ({cap_from})")
    if entries:
        print_view([cache_table(entries, format_size)], console)
    return 0


def _n_entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _parse_age(text: str) -> float:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*", text, re.IGNORECASE)
    if not m:
        raise _common.usage(f"bad --older-than {text!r}", "use an age such as 90s, 30m, 12h, 7d or plain seconds")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2).lower()]


def run_clear(args) -> int:
    from advisor.context.cache import format_size
    from advisor.report.terminal import make_console

    older = None if args.older_than is None else _parse_age(args.older_than)
    cache = _open_cache(args)
    keys = [k.strip().lower() for k in args.key]
    if keys:
        known = [e["key"] for e in cache.entries(rows=False)]
        unknown = [k for k in keys if not k or not any(key.startswith(k) for key in known)]
        if unknown:
            raise _common.usage(f"no cache entry whose key starts with {unknown[0]!r} in {cache.root}",
                         "see 'advisor cache info' for the keys")
    removed, in_use = cache.clear(older_than=older, keys=keys)
    console = make_console()
    console.print(f"removed {_n_entries(len(removed))} ({format_size(sum(e['bytes'] for e in removed))}) "
                  f"from {cache.root}")
    for e in in_use:
        console.print(f"kept {e['key'][:12]} ({e['kind']} {e['block']}): in use by another process")
    return 0
