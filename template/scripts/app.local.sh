# scripts/app.local.sh: this project's own settings for scripts/app.sh.
#
# app.sh sources this file (as bash) before every command. The template creates it
# once and never changes it again, so what you set here survives every
# `copier update` without a merge conflict. Leave scripts/app.sh itself to the template.
#
# Arguments added to `jupyter lab`. app.sh puts its own after them, so the binding
# to 127.0.0.1, the port and the token cannot be overridden from here.
# JUPYTER_EXTRA_ARGS+=(--ServerApp.iopub_data_rate_limit=1e10)
# JUPYTER_EXTRA_ARGS+=(--LabApp.default_url=/lab/tree/README.md)
#
# Environment for the server and its kernels:
# export PYTHONWARNINGS=ignore::DeprecationWarning
#
# app.sh's own settings (see `scripts/app.sh help`); they take effect from here as
# from the environment. A bad value is refused by bootstrap, start, restart and run
# before anything happens; stop, status, url and logs warn and use the default:
# APP_START_TIMEOUT=300       # seconds to wait for the server to answer
# APP_STOP_TIMEOUT=10         # seconds between SIGTERM and SIGKILL on stop
# APP_LOCK_TIMEOUT=300        # seconds to wait for another app.sh command
# APP_IDLE_TIMEOUT=120        # minutes: idle kernels no browser shows are shut down,
#                             # then the server stops itself after that long without
#                             # activity (never with a busy kernel or a headless run;
#                             # status tells when; not with jupyverse). Default 0: never
# APP_DOCUMENT_CLEANUP_DELAY=600  # server-side execution: seconds a notebook stays in
#                             # memory once no browser shows it (default: until stop)
# APP_PYTHON=python3.12       # interpreter for a new venv
# APP_INSTALLER=uv            # or pip
# APP_EXTRAS=plot,io          # pyproject.toml's optional dependencies to install
# APP_GROUPS=dev              # its dependency groups (PEP 735) to install
# APP_EXCLUDE=rfc3987-syntax  # never installed (the default: it only slows the start)
