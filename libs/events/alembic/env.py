from libs.events.migrate import run_env

run_env()
