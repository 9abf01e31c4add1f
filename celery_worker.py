from app import create_app_or_exit

celery_app = create_app_or_exit().extensions["celery"]
