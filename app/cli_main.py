"""The `provisioning` console command (pyproject.toml), the same commands as
`flask provisioning`, without needing FLASK_APP or the flask launcher."""

from __future__ import annotations

from flask import Flask
from flask.cli import ScriptInfo

from app import config


def _create_app() -> Flask:
    from app import create_app

    return create_app()


def main() -> None:
    from app import cli_jobs  # noqa: F401 - registers the lifecycle verbs
    from app.cli import provisioning_cli
    from app.cli_final_copies import final_copies_cli
    from app.cli_secrets import refuse_wrong_key

    # As register_cli does for `flask provisioning`.
    provisioning_cli.add_command(final_copies_cli)
    provisioning_cli.callback = refuse_wrong_key
    with config.reported_at_start():  # bad settings: one message, exit 3
        provisioning_cli.main(prog_name="provisioning", obj=ScriptInfo(create_app=_create_app))


if __name__ == "__main__":
    main()
