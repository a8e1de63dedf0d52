"""`python -m sandbox [--host] [--port] [--seed] [--faults] [--rate-limits]`."""

import argparse

from sandbox.server import add_sandbox_arguments, config_from_args, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    add_sandbox_arguments(parser)
    ns = parser.parse_args()
    serve(ns.host, ns.port, config_from_args(ns))


if __name__ == "__main__":
    main()
