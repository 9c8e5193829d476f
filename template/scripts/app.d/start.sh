# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/start.sh: start: launching the server detached, readiness, the browser, --foreground.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# Starts the server detached from this terminal: its own session (setsid, or Python's
# os.setsid where the setsid command is missing, as on macOS) and nohup, so neither
# Ctrl-C here nor closing the terminal reaches it. Sets SERVER_PID.
launch_server() {
	local port=$1
	if [[ $SERVER == jupyverse ]]; then
		launch_jupyverse "$port"
		return 0
	fi
	local -a detach=(setsid) args
	idle_shutdown_args
	args=(
		# Defaults the project may change in JUPYTER_EXTRA_ARGS (a later option wins):
		# the Extension Manager lists extensions but installs none, since an extension
		# installed from the browser lands in the venv outside the project's declared
		# dependencies, and a recreated venv loses it (issue 15; README).
		--LabApp.extension_manager=readonly
		${IDLE_ARGS[@]+"${IDLE_ARGS[@]}"}
		${JUPYTER_EXTRA_ARGS[@]+"${JUPYTER_EXTRA_ARGS[@]}"}
		# What app.sh guarantees, last.
		--no-browser
		--ip=127.0.0.1
		--port="$port"
		--ServerApp.port_retries=0
		--notebook-dir="$NOTEBOOK_DIR"
		--MultiKernelManager.default_kernel_name="$PROJECT_NAME"
		# One kernel: no "Python 3 (ipykernel)" added from the ipykernel package.
		--KernelSpecManager.ensure_native_kernel=False
		# Collaboration state (when jupyter-collaboration is installed) stays isolated.
		--SQLiteYStore.db_path="$JUPYTER_DATA_DIR/jupyter_ystore.db"
		--YDocExtension.session_store_path="$JUPYTER_DATA_DIR/collaboration_sessions.json"
	)
	if [[ $SERVER_SIDE_EXECUTION == true ]]; then
		# The server executes cells and writes outputs into the shared document; it keeps
		# the document (and so its pending saves) while no browser shows it.
		args+=(
			--YDocExtension.server_side_execution=True
			--YDocExtension.document_cleanup_delay="$DOCUMENT_CLEANUP_DELAY"
		)
	fi
	# APP_IDLE_TIMEOUT promises that a busy kernel is never culled, whatever the project sets.
	((IDLE_TIMEOUT == 0)) || args+=(--MappingKernelManager.cull_busy=False)
	# JupyterLab refuses to run as root without it; containers run as root.
	((EUID == 0)) && args+=(--allow-root)
	command -v setsid >/dev/null 2>&1 ||
		detach=("$JUPYTER_PYTHON" -I -S -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])')
	# The previous server's log stays readable as jupyter.log.1.
	[[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
	(umask 077 && : >"$LOG_FILE") || die "cannot write $(rel "$LOG_FILE")"
	# The token, chosen here, reaches the server in a private file that its launcher reads
	# and deletes: never in a command line (any user reads those), nor in the environment
	# kernels inherit. A token from configuration shows as "?token=..." in the server's
	# log, where one the server generates is logged whole.
	local token_file=$JUPYTER_RUNTIME_DIR/app-token-$$
	(umask 077 && new_token >"$token_file") || die "cannot write in $(rel "$JUPYTER_RUNTIME_DIR"); is the disk full?"
	# exec keeps one PID from here to the server: $! is the server's PID. The venv's
	# Python rather than its jupyter-lab script, whose #! line names the directory the
	# venv was created in. The marker variable tells this project's kernels apart.
	(cd "$PROJECT_ROOT" && export "$SERVER_MARKER=$PROJECT_ROOT" APP_TOKEN_FILE="$token_file" &&
		exec nohup "${detach[@]}" "$JUPYTER_PYTHON" -c "$JUPYTERLAB_LAUNCHER" -m jupyterlab "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1) &
	SERVER_PID=$!
	if ! write_pid_file "$SERVER_PID"; then
		kill -TERM "$SERVER_PID" 2>/dev/null
		die "cannot write $(rel "$PID_FILE"); is the disk full?"
	fi
}

# Sets IDLE_ARGS, jupyter-server's settings for APP_IDLE_TIMEOUT (none when it is 0).
# Kernels idle MINUTES are culled (checked every minute), but never a busy one
# (cull_busy=False, set last by launch_server: a running cell or a headless run keeps
# its kernel busy) nor one a browser is connected to (cull_connected=False: an open
# notebook keeps its variables; a visible JupyterLab tab polls the server, which counts
# as activity anyway).
# jupyter-server stops itself once no kernel and no terminal is left and nothing
# happened for MINUTES (it checks every minute, so up to a minute later); its log then
# says "No kernels for N seconds; shutting down", which status reads (idle_stop_time).
idle_shutdown_args() {
	IDLE_ARGS=()
	((IDLE_TIMEOUT > 0)) || return 0
	IDLE_ARGS=(
		--ServerApp.shutdown_no_activity_timeout=$((IDLE_TIMEOUT * 60))
		--MappingKernelManager.cull_idle_timeout=$((IDLE_TIMEOUT * 60))
		--MappingKernelManager.cull_interval=60
		--MappingKernelManager.cull_connected=False
	)
}

# jupyverse (0.14.18) can neither cull idle kernels nor stop itself when idle: with
# APP_IDLE_TIMEOUT set, start refuses rather than promise what it cannot keep.
refuse_idle_timeout_with_jupyverse() {
	[[ $SERVER == jupyverse ]] && ((IDLE_TIMEOUT > 0)) || return 0
	setting_error "APP_IDLE_TIMEOUT=$IDLE_TIMEOUT: jupyverse (this project's server) cannot cull idle kernels" \
		"or stop itself when idle; remove the setting, or switch: copier update --trust -d server=jupyter-server"
}

# app.sh's JupyterLab: what `python -m jupyterlab` runs, labelled "-m jupyterlab" in its
# command line (sys.argv drops the label), except that the interpreter skips its cyclic
# garbage collection on the way out: an exit handler registered before any other, so
# run after all of them, freezes the heap. Every atexit handler, thread join and flush
# still runs; an idle server's SIGTERM-to-exit goes from ~150 ms to ~15 ms (bench). The
# token comes from the file APP_TOKEN_FILE names (deleted once read; the variable is
# dropped, so kernels do not inherit it) as the last option, in sys.argv only: the
# process's command line, which ps shows, is the one it was started with.
readonly JUPYTERLAB_LAUNCHER='import atexit, gc, os, sys; atexit.register(lambda: (gc.disable(), gc.freeze())); del sys.argv[1:3]; f = os.environ.pop("APP_TOKEN_FILE"); sys.argv.append("--IdentityProvider.token=" + open(f).read().strip()); os.unlink(f); from jupyterlab.labapp import main; sys.exit(main())'

# Prints a new token: 24 random bytes in hex, as Jupyter makes its own.
new_token() {
	local token
	token=$(od -An -N24 -tx1 /dev/urandom) || return 1
	token=${token//[[:space:]]/}
	((${#token} == 48)) || return 1
	printf '%s\n' "$token"
}

# jupyverse, in Python: the token comes on stdin (never in an argument: any user can
# read those), then stdin is /dev/null again. The root is the working directory (it has
# no option): --notebook-dir, which also tells this project's server apart, is read
# here. Kernel connection files go to the project's runtime directory as kernel-*.json
# (jupyverse makes them with tempfile.mkstemp; the kernels keep the user's TMPDIR).
# SIGTERM becomes SIGINT, on which jupyverse stops its kernels (on SIGTERM it exits at
# once, leaving them running); a background job starts with SIGINT ignored. The heap is
# frozen on the way out, as for JupyterLab (its stop: ~500 ms to ~180 ms here).
# shellcheck disable=SC2016
readonly JUPYVERSE_LAUNCHER='import atexit, gc, os, signal, sys, tempfile; atexit.register(lambda: (gc.disable(), gc.freeze())); os.chdir(sys.argv[2].partition("=")[2]); token = sys.stdin.readline().strip(); null = os.open(os.devnull, os.O_RDONLY); os.dup2(null, 0); os.close(null); tempfile.tempdir = os.environ["JUPYTER_RUNTIME_DIR"]; tempfile.template = "kernel-"; signal.signal(signal.SIGINT, signal.default_int_handler); signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT)); sys.argv = ["jupyverse"] + sys.argv[3:] + ["--set", "auth.token=" + token]; from jupyverse_api.cli import main; sys.exit(main())'

# launch_server for jupyverse: the same detachment, PID file and log; app.sh chooses the
# token and writes the runtime record jupyverse does not (see write_runtime_record).
launch_jupyverse() {
	local port=$1 token delay=$DOCUMENT_CLEANUP_DELAY state=$JUPYVERSE_STATE_DIR
	local -a detach=(setsid) args
	# None (keep documents until the server stops) is not a number to jupyverse: a year.
	[[ $delay != None ]] || delay=31536000
	token=$("$JUPYTER_PYTHON" -I -S -c 'import secrets; print(secrets.token_hex(24))') || die "cannot generate a token"
	private_dir "$JUPYTER_DATA_DIR"
	private_dir "$state"
	args=(
		jupyverse
		--notebook-dir="$NOTEBOOK_DIR"
		--host 127.0.0.1
		--port="$port"
		--timeout "$START_TIMEOUT"
		--disable login
		--set auth.mode=token
		--set "auth.directory=$state"
		--set "file_id.db_path=$state/fileid.db"
		--set "ystore_sqlite.db_path=$state/ystore.db"
		--set "kernels.default_kernel=$PROJECT_NAME"
		--set kernels.require_yjs=true
		--set jupyterlab.server_side_execution=true
		--set "yrooms.document_cleanup_delay=$delay"
		${JUPYTER_EXTRA_ARGS[@]+"${JUPYTER_EXTRA_ARGS[@]}"}
	)
	command -v setsid >/dev/null 2>&1 ||
		detach=("$JUPYTER_PYTHON" -I -S -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])')
	[[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
	(umask 077 && : >"$LOG_FILE") || die "cannot write $(rel "$LOG_FILE")"
	(cd "$NOTEBOOK_DIR" && export "$SERVER_MARKER=$PROJECT_ROOT" &&
		exec nohup "${detach[@]}" "$JUPYTER_PYTHON" -I -c "$JUPYVERSE_LAUNCHER" "${args[@]}" <<<"$token" >>"$LOG_FILE" 2>&1) &
	SERVER_PID=$!
	if ! write_pid_file "$SERVER_PID" || ! write_runtime_record "$SERVER_PID" "$port" "$token"; then
		kill -TERM "$SERVER_PID" 2>/dev/null
		die "cannot write $(rel "$PID_FILE") or the runtime record; is the disk full?"
	fi
}

# The runtime file jupyverse does not write, as jupyter-server writes it (the keys
# read_server_info reads), private: jpserver-PID.json in the runtime directory.
write_runtime_record() {
	local file=$JUPYTER_RUNTIME_DIR/jpserver-$1.json
	(umask 077 && printf '{\n  "pid": %s,\n  "hostname": "127.0.0.1",\n  "port": %s,\n  "url": "http://127.0.0.1:%s/",\n  "token": "%s",\n  "root_dir": %s,\n  "server": "jupyverse"\n}\n' \
		"$1" "$2" "$2" "$3" "$(json_string "$NOTEBOOK_DIR")" >"$file.$$" && mv -f "$file.$$" "$file") 2>/dev/null
}

# Writes PID to the PID file atomically (a temporary file renamed over it), so the PID
# file is always whole or absent, even on a full disk.
write_pid_file() {
	local tmp=$PID_FILE.$$
	# mv would drop the file into a directory of that name.
	[[ ! -d $PID_FILE ]] || return 1
	if (umask 077 && printf '%s\n' "$1" >"$tmp" && mv -f "$tmp" "$PID_FILE") 2>/dev/null; then
		return 0
	fi
	rm -f "$tmp"
	return 1
}

# What jupyverse logs when its port cannot be bound (then it hangs instead of exiting).
readonly JUPYVERSE_BIND_FAILED='address already in use|Module failed while starting +\[fps\._module\] path=jupyverse\.server'

# Waits until SERVER_PID has written its runtime file and answers with token auth on.
# Returns 0 when ready, 1 when the server exited (STARTUP_STATUS has its status).
wait_until_ready() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT + 1)) code TOKEN_MODE=""
	[[ $SERVER != jupyverse ]] || TOKEN_MODE=query
	while :; do
		# jupyverse does not exit when it cannot bind its port: it logs it and hangs. When
		# another server took the port first, all it logs is that its server module failed.
		if [[ $SERVER == jupyverse ]] && grep -qiE "$JUPYVERSE_BIND_FAILED" "$LOG_FILE" 2>/dev/null; then
			load_process_table
			terminate "$STOP_TIMEOUT" "$pid"
			read_server_info "$pid" || true
			rm -f "$JUPYTER_RUNTIME_DIR/jpserver-$pid.json"
			printf 'The port %s is already in use\n' "${SERVER_PORT:-?}" >>"$LOG_FILE"
			STARTUP_STATUS=1
			return 1
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			STARTUP_STATUS=0
			wait "$pid" 2>/dev/null || STARTUP_STATUS=$?
			# jupyverse exits 0 when it fails to start; app.sh wrote its runtime record.
			[[ $SERVER != jupyverse ]] || rm -f "$JUPYTER_RUNTIME_DIR/jpserver-$pid.json"
			return 1
		fi
		if read_server_info "$pid"; then
			# Auth is on when a stranger gets the login page, or the API refuses him.
			code=$(stranger_answer)
			case $code in
			200 | api:403 | api:401)
				# Jupyter writes its runtime file before it binds the port, so what answered
				# may be another server that took the port first. Only ours knows its token.
				if [[ -z $SERVER_TOKEN || $(http_status "${SERVER_URL%/}/api/status" "$SERVER_TOKEN" "$TOKEN_MODE") == 200 ]]; then
					return 0
				fi
				;;
			api:2*)
				stop_server_now "$pid"
				die "the server accepted a request without a token: some Jupyter config disables" \
					"authentication ($(rel "$JUPYTER_CONFIG_DIR") or JUPYTER_CONFIG_PATH); app.sh never runs a server without it"
				;;
			esac
		fi
		if ((SECONDS >= deadline)); then
			stop_server_now "$pid"
			die "the server did not answer within ${START_TIMEOUT}s (see scripts/app.sh logs); set APP_START_TIMEOUT to wait longer"
		fi
		sleep "$POLL_INTERVAL"
	done
}

stop_server_now() {
	load_process_table
	terminate "$STOP_TIMEOUT" "$1"
	rm -f "$PID_FILE" "$LEGACY_PID_FILE"
}

print_startup_failure() {
	warn "JupyterLab exited during startup (status $STARTUP_STATUS). Last lines of $(rel "$LOG_FILE"):"
	tail -n 20 "$LOG_FILE" | sed 's/^/    /' >&2
}

open_browser() {
	local target=$1 opener=""
	if [[ -n ${BROWSER:-} ]]; then
		opener=$BROWSER
	elif [[ $OSTYPE == darwin* ]] && command -v open >/dev/null 2>&1; then
		opener=open
	elif [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]] && command -v xdg-open >/dev/null 2>&1; then
		opener=xdg-open
	fi
	if [[ -z $opener ]]; then
		say "no browser to open here; open the URL above (or pass --no-open to skip this check)"
		return 0
	fi
	"$opener" "$target" </dev/null >/dev/null 2>&1 &
}

# Stops whatever a crashed server of this project left behind, before a new start.
clean_leftovers() {
	if [[ -n $STALE_PID ]]; then
		if idle_stop_time; then
			say "the previous server stopped itself at $IDLE_STOPPED_AT, idle (APP_IDLE_TIMEOUT); removing its PID file"
		else
			say "removing stale PID file (PID $STALE_PID is not this project's Jupyter server)"
		fi
		rm -f "$PID_FILE" "$LEGACY_PID_FILE"
	fi
	if ((${#STRAY_KERNELS[@]} > 0)); then
		say "stopping kernels left by a server that is gone: PID ${STRAY_KERNELS[*]}"
		terminate "$KERNEL_STOP_TIMEOUT" "${STRAY_KERNELS[@]}"
		STRAY_KERNELS=()
	fi
}

# Parses and validates start's options, before anything changes: sets START_FOREGROUND,
# START_NO_OPEN and START_PORT (empty: the first free port of the range).
parse_start_options() {
	local command=$1
	shift
	START_FOREGROUND=0 START_NO_OPEN=0 START_PORT=""
	while (($#)); do
		case $1 in
		--foreground) START_FOREGROUND=1 ;;
		--no-open) START_NO_OPEN=1 ;;
		--port)
			(($# >= 2)) || usage_error "$command: --port needs a value, e.g. --port $PORT_RANGE_START"
			START_PORT=$2
			shift
			;;
		--port=*) START_PORT=${1#--port=} ;;
		*) usage_error "$command: unknown option '$1'" ;;
		esac
		shift
	done
	if [[ -n $START_PORT ]]; then
		valid_port "$START_PORT" || usage_error "$command: --port needs a number from 1 to 65535 (got '$START_PORT')"
		START_PORT=$((10#$START_PORT))
	fi
	refuse_idle_timeout_with_jupyverse
	return 0
}

cmd_start() {
	parse_start_options start "$@"
	acquire_lock
	run_start
}

# start, once its options are parsed and the lock is held.
run_start() {
	if [[ -n $START_PORT ]] && ((START_PORT < PORT_RANGE_START || START_PORT > PORT_RANGE_END)); then
		warn "port $START_PORT is outside this project's range $PORT_RANGE_START-$PORT_RANGE_END"
	fi
	ensure_venv
	apply_venv_defaults
	create_isolation_dirs
	scan_project
	cleanup_stale_runtime
	adopt_untracked_server
	if [[ -n $TRACKED_PID ]]; then
		register_project
		report_already_running
		return 0
	fi
	if ((${#FOREIGN_SERVERS[@]} > 0)); then
		warn "another Jupyter server runs in this project, not started by app.sh: PID ${FOREIGN_SERVERS[*]}"
	fi
	clean_leftovers
	check_free_space
	start_server_on_free_port
	say "JupyterLab for $DISPLAY_NAME is running (PID $SERVER_PID, port $SERVER_PORT); stop it with: scripts/app.sh stop"
	lab_url
	((START_NO_OPEN)) || open_lab_in_browser
	if ((START_FOREGROUND)); then
		release_lock
		supervise_foreground "$SERVER_PID"
	fi
	return 0
}

# The environments to start from (classify_venv): bootstraps when the server's is
# missing (a new project, a clone, one bootstrapped by an earlier release), made for the
# other server, or the project's .venv or its kernel are gone, or the project moved
# (the kernel and the venvs' scripts name the old place). With a lock, whatever its tool
# changed since (uv add, poetry add) is taken in by a bootstrap here, a few seconds at most.
ensure_venv() {
	dependency_files
	classify_venv
	case $STATUS_VENV in
	missing)
		say "$(rel "$JUPYTER_VENV") is not there yet: bootstrapping first"
		run_bootstrap 0
		return 0
		;;
	previous)
		# Never from under the old server, still running: start reports it, restart stops it first.
		if legacy_server_running; then
			say "the running server runs from $(rel "$VENV_DIR"), as an earlier release laid it out;" \
				"scripts/app.sh restart moves it to $(rel "$JUPYTER_VENV")"
			return 0
		fi
		say "moving JupyterLab from $(rel "$VENV_DIR") to $(rel "$JUPYTER_VENV") (this release keeps the server apart): bootstrapping first"
		run_bootstrap 0
		return 0
		;;
	broken) die "$(rel "$JUPYTER_VENV") is broken (JupyterLab or Python missing); repair it with: scripts/app.sh bootstrap" ;;
	switched)
		# Never from under the old server, still running: start reports it, restart stops it first.
		scan_project
		[[ -z $TRACKED_PID ]] || return 0
		say "the server is now $SERVER (copier update): bootstrapping first"
		run_bootstrap 0
		return 0
		;;
	esac
	if [[ $ENV_STATE != ok ]]; then
		say "the project's environment $(rel "$VENV_DIR") is $ENV_STATE: bootstrapping first"
		run_bootstrap 0
	elif [[ ! -f $KERNEL_SPEC ]]; then
		say "the project's kernel is not registered in $(rel "$VENV_DIR") (made again by its package manager?): bootstrapping first"
		run_bootstrap 0
	elif project_moved; then
		say "the project moved from $STAMPED_ROOT since the last bootstrap: bootstrapping again"
		run_bootstrap 0
	elif ! bootstrap_is_current; then
		if [[ $ENV_OWNER != app ]]; then
			# A running server is left as it is: start only reports it.
			scan_project
			[[ -z $TRACKED_PID ]] || return 0
			say "$LOCK_FILE or the project's Python changed since the last bootstrap: bootstrapping again"
			run_bootstrap 0
		elif [[ $STAMPED_DEPENDENCIES == failed ]]; then
			warn "the project's dependencies failed to install at the last bootstrap: JupyterLab starts" \
				"without them; fix ${DEPENDENCY_FILES[*]-them}, then run: scripts/app.sh bootstrap"
		else
			warn "dependencies or kernel changed since the last bootstrap; run: scripts/app.sh bootstrap"
		fi
	fi
}

# One look at the processes: the snapshot, the PID file, and this project's servers
# and leftover kernels (see the shared state block).
scan_project() {
	load_process_table
	read_pid_file
	find_project_processes
}

# A server app.sh started whose PID file was lost: track it again.
adopt_untracked_server() {
	[[ -z $TRACKED_PID ]] && ((${#ORPHAN_APP_SERVERS[@]} == 1)) || return 0
	read_server_info "${ORPHAN_APP_SERVERS[0]}" || return 0
	TRACKED_PID=${ORPHAN_APP_SERVERS[0]}
	ORPHAN_APP_SERVERS=()
	say "found this project's server (PID $TRACKED_PID) running without its PID file; tracking it again"
	write_pid_file "$TRACKED_PID" || warn "cannot write $(rel "$PID_FILE"); is the disk full?"
}

report_already_running() {
	read_server_info "$TRACKED_PID" || die "the server (PID $TRACKED_PID) runs but has no runtime file; run: scripts/app.sh restart"
	! server_accepts_strangers || die "the running server (PID $TRACKED_PID) $NO_AUTH_MESSAGE"
	say "already running (PID $TRACKED_PID, port $SERVER_PORT)"
	find_running_old_server
	[[ -z $RUNNING_OLD_SERVER ]] ||
		warn "it is still $RUNNING_OLD_SERVER, and the project's server is now $SERVER; switch it with: scripts/app.sh restart"
	if [[ -n $START_PORT ]] && ((START_PORT != SERVER_PORT)); then
		warn "it runs on port $SERVER_PORT, not $START_PORT; use 'scripts/app.sh restart --port $START_PORT' to move it"
	fi
	lab_url
}

# Launches the server on START_PORT, or on the first free port of the range, and waits
# until it answers. Another program may take a free port between the probe and the
# server's bind: then the next free port is tried, a given --port is not.
start_server_on_free_port() {
	local port first=$PORT_RANGE_START attempt
	for ((attempt = 0; attempt < 20; attempt++)); do
		choose_port "$first"
		port=$PORT_CHOSEN
		say "starting JupyterLab on 127.0.0.1:$port..."
		SERVER_PID=""
		arm_startup_traps
		launch_server "$port"
		# The machine's registry (status --all), while the server imports.
		((attempt > 0)) || register_project
		if wait_until_ready "$SERVER_PID"; then
			# A foreground server stays tied to this command until supervise_foreground
			# takes over.
			((START_FOREGROUND)) || trap - INT HUP TERM
			return 0
		fi
		trap - INT HUP TERM
		rm -f "$PID_FILE" "$LEGACY_PID_FILE"
		if [[ -z $START_PORT ]] && grep -q "The port $port is already in use" "$LOG_FILE"; then
			say "port $port was taken meanwhile; trying the next one"
			first=$((port + 1))
			((first <= PORT_RANGE_END)) && continue
		fi
		print_startup_failure
		die "the server did not start; fix the cause above, then run: scripts/app.sh start"
	done
	die "other programs kept taking the free ports of $PORT_RANGE_START-$PORT_RANGE_END; try again, or pass --port PORT"
}

# Sets PORT_CHOSEN: START_PORT (refused by name when busy); else, once, PREFERRED_PORT
# (restart: the port the server had) when it is free; else the first free port of
# FIRST..PORT_RANGE_END.
choose_port() {
	if [[ -n $START_PORT ]]; then
		if ! find_free_port "$START_PORT" "$START_PORT" >/dev/null; then
			describe_port_holders "$START_PORT" "$START_PORT"
			die "port $START_PORT is busy; choose another with --port, or omit it to use the first free port of $PORT_RANGE_START-$PORT_RANGE_END"
		fi
		PORT_CHOSEN=$START_PORT
		return 0
	fi
	if [[ -n $PREFERRED_PORT ]]; then
		PORT_CHOSEN=$PREFERRED_PORT PREFERRED_PORT=""
		find_free_port "$PORT_CHOSEN" "$PORT_CHOSEN" >/dev/null && return 0
		say "port $PORT_CHOSEN, the server's before the restart, was taken meanwhile; moving to a free one"
	fi
	if ! PORT_CHOSEN=$(find_free_port "$1" "$PORT_RANGE_END"); then
		describe_port_holders "$PORT_RANGE_START" "$PORT_RANGE_END"
		die "no free port in $PORT_RANGE_START-$PORT_RANGE_END; stop a server there, pass --port PORT," \
			"or widen the range: copier update --trust -d port_range_end=$((PORT_RANGE_END + 10))"
	fi
}

# The browser gets a file:// URL of a page that redirects to the server with the token,
# so the token is in no browser's command line. Jupyter writes that page; where it did
# not, app.sh writes its own, private.
open_lab_in_browser() {
	local redirect=$JUPYTER_RUNTIME_DIR/jpserver-$SERVER_PID-open.html
	if [[ ! -f $redirect ]]; then
		redirect=$JUPYTER_RUNTIME_DIR/app-open.html
		(umask 077 && printf '<!DOCTYPE html><meta http-equiv="refresh" content="0;url=%s">\n' "$(lab_url)" >"$redirect") ||
			{
				warn "cannot write $(rel "$redirect"); open the URL above"
				return 0
			}
	fi
	open_browser "$(file_url "$redirect")"
}

# A file:// URL for PATH, percent-encoded: a path with '#', '?', '%', spaces or quotes
# must still name the file.
file_url() {
	local path=$1 encoded="" char code i
	local LC_ALL=C # byte by byte: UTF-8 names are encoded byte-wise, as URLs want
	for ((i = 0; i < ${#path}; i++)); do
		char=${path:i:1}
		case $char in
		[A-Za-z0-9/._~-]) encoded+=$char ;;
		*)
			printf -v code '%d' "'$char"
			((code >= 0)) || code=$((code + 256)) # bash 3.2 sign-extends bytes >= 128
			printf -v char '%%%02X' "$code"
			encoded+=$char
			;;
		esac
	done
	printf 'file://%s\n' "$encoded"
}

# JupyterLab starts even when it cannot write its runtime file, and then nothing can
# find it: refuse to start on a full disk instead.
check_free_space() {
	local _fs _blocks _used available _rest
	while read -r _fs _blocks _used available _rest; do
		if [[ $available =~ ^[0-9]+$ ]] && ((available < 1024)); then
			die "the disk holding $PROJECT_ROOT is full (${available} KiB free); free some space and run: scripts/app.sh start"
		fi
	done <<<"$(df -Pk "$LOG_DIR" "$JUPYTER_RUNTIME_DIR" 2>/dev/null)"
}

# Ctrl-C while the server starts stops it. A closed terminal (HUP) or TERM leaves a
# background server running and tracked, as once it is up (spec 6); a foreground
# server is stopped, as it would be once up.
arm_startup_traps() {
	if ((START_FOREGROUND)); then
		trap 'abort_start' INT TERM HUP
	else
		trap 'abort_start' INT
		trap 'leave_starting_server 129' HUP
		trap 'leave_starting_server 143' TERM
	fi
}

abort_start() {
	trap - INT TERM HUP
	# The terminal may be gone (HUP in the foreground): what is printed may go nowhere.
	say "interrupted: stopping the server that was starting" 2>/dev/null || true
	[[ -z ${SERVER_PID:-} ]] || stop_server_now "$SERVER_PID"
	exit 130
}

# HUP (the terminal closed) or TERM while the server starts: it runs on, detached and
# tracked by its PID file; only this command ends, quietly (its terminal may be gone).
leave_starting_server() {
	trap - INT TERM HUP
	exit "$1"
}

# start --foreground: show the log until Ctrl-C (or TERM, or HUP, or the server exits
# by itself, e.g. File > Shut Down), then stop the server and its kernels and remove
# the PID file. Every other way out (an error) goes through on_exit, which does the same.
supervise_foreground() {
	local status=0
	tail -n +1 -f "$LOG_FILE" >&2 &
	FOREGROUND_TAIL=$! FOREGROUND_PID=$1
	trap 'interrupt_foreground' INT TERM HUP
	wait "$1" || status=$?
	trap - INT TERM HUP
	end_foreground
	say "JupyterLab exited (status $status)"
	exit "$status"
}

interrupt_foreground() {
	trap - INT TERM HUP
	# The terminal may be gone (HUP): what is printed may go nowhere.
	{ printf '\n' && say "stopping JupyterLab (PID $FOREGROUND_PID)..."; } 2>/dev/null || true
	end_foreground
	exit 0
}

# Stops what start --foreground started: its server (when it still runs), the kernels
# left behind, the log tail; the PID file goes unless a restart from another terminal
# has started a new server meanwhile. Prints nothing.
end_foreground() {
	local pid=$FOREGROUND_PID args
	FOREGROUND_PID=""
	kill "$FOREGROUND_TAIL" 2>/dev/null || true
	acquire_lock
	load_process_table
	if args=$(args_of "$pid") && is_project_server "$pid" "$args"; then
		terminate "$STOP_TIMEOUT" "$pid"
	fi
	scan_project
	((${#STRAY_KERNELS[@]} == 0)) || terminate "$KERNEL_STOP_TIMEOUT" "${STRAY_KERNELS[@]}"
	[[ -n $TRACKED_PID ]] || rm -f "$PID_FILE" "$LEGACY_PID_FILE"
}

# Every exit: a foreground server still up is stopped, the lock released.
on_exit() {
	[[ -z $FOREGROUND_PID ]] || end_foreground
	release_lock
}
