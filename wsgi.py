from app import config, create_app

with config.reported_at_start():  # bad settings: one message and exit 3, no traceback
    app = create_app()
