"""Celery: app (configuration, queues, task names), remote (chapters sent to workers), worker (the tasks),
control (`bookreader worker | beat | inspect | purge`)."""
