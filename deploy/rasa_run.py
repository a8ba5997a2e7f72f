"""`rasa run` for production: environment checked, HTTP API behind a token.

    python -m deploy.rasa_run [rasa run options...]

1. deploy.check_env refuses to start with a missing or default secret;
2. `rasa run` starts with `--enable-api --auth-token $RASA_AUTH_TOKEN`: the model and
   tracker endpoints answer 401 without the token. The token is added to rasa's arguments
   inside this process, so it does not appear on the command line (`ps`, /proc/PID/cmdline).
"""

from __future__ import annotations

import os
import sys

from deploy.check_env import check_or_exit


def main() -> None:
    check_or_exit()
    args = [a for a in sys.argv[1:] if a not in ("--enable-api",)]
    if any(a.startswith("--auth-token") for a in args):
        sys.exit("deploy.rasa_run: the token comes from RASA_AUTH_TOKEN, not from the command line")
    sys.argv = ["rasa", "run", *args, "--enable-api", "--auth-token", os.environ["RASA_AUTH_TOKEN"]]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
