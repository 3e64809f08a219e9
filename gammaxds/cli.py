"""The `gammaxds` command."""


def main() -> None:
    raise SystemExit("not yet")
