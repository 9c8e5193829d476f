# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/processes.sh: the process snapshot, which processes are this project's, and stopping them.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# One snapshot of the process table serves every question a command asks about
# processes. It comes from `ps` where `ps` works (one process, faster than bash reading
# /proc once there are hundreds of processes), else from /proc (slim Linux images have
# no procps; BusyBox's ps rejects -A and -ww); when neither works, app.sh refuses to
# act rather than guess. Matching on command
# lines uses quoted (literal) patterns: project paths may contain spaces, brackets,
# '*' or '$'.

load_process_table() {
	PS_PIDS=() PS_PPIDS=() PS_ARGS=()
	if [[ $PROCESS_SOURCE != proc ]]; then
		read_ps_table
		# A working ps lists this shell itself.
		if [[ $PS_SELF_SEEN == 1 ]]; then
			PROCESS_SOURCE='ps'
			return 0
		fi
		PS_PIDS=() PS_PPIDS=() PS_ARGS=()
	fi
	if [[ -r /proc/$$/stat ]]; then
		PROCESS_SOURCE='proc'
		read_proc_table
		return 0
	fi
	die "cannot list processes: 'ps -A -ww -o pid=,ppid=,stat=,args=' does not work here and there is no /proc;" \
		"install a full ps (Debian/Ubuntu: apt-get install procps; Alpine: apk add procps), then try again"
}

read_ps_table() {
	local pid ppid state args table
	PS_SELF_SEEN=0
	table=$(ps -A -ww -o pid= -o ppid= -o stat= -o args= 2>/dev/null) || return 0
	while read -r pid ppid state args; do
		[[ $pid == "$$" ]] && PS_SELF_SEEN=1
		# A zombie has exited; only its parent has yet to reap it.
		[[ $pid == "$$" || $state == Z* || ! $pid =~ ^[0-9]+$ ]] && continue
		PS_PIDS+=("$pid")
		PS_PPIDS+=("$ppid")
		PS_ARGS+=("$args")
	done <<<"$table"
}

# The same snapshot from /proc (Linux): PPID and state from stat, arguments from
# cmdline (NUL-separated; joined with spaces as ps does). Kernel threads have none.
read_proc_table() {
	local dir pid stat state ppid part args
	for dir in /proc/[0-9]*; do
		pid=${dir#/proc/}
		[[ $pid == "$$" ]] && continue
		stat="" args=""
		read -r stat 2>/dev/null <"$dir/stat" || continue
		# "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
		stat=${stat##*) }
		state=${stat%% *} stat=${stat#* } ppid=${stat%% *}
		[[ $state == Z* ]] && continue
		while IFS= read -r -d '' part; do args+="$part "; done 2>/dev/null <"$dir/cmdline" || true
		[[ -n $args ]] || continue
		PS_PIDS+=("$pid")
		PS_PPIDS+=("$ppid")
		PS_ARGS+=("${args% }")
	done
}

# Whether process PID has NAME=VALUE in its environment (as it was at exec); fails
# too when that cannot be read (another user's process, or no way on this system).
process_has_env() {
	local pid=$1 entry=$2=$3 line
	if [[ -r /proc/$pid/environ ]]; then
		while IFS= read -r -d '' line; do
			[[ $line == "$entry" ]] && return 0
		done 2>/dev/null <"/proc/$pid/environ"
		return 1
	fi
	[[ $PROCESS_SOURCE == ps && ! -d /proc/$$ ]] || return 1
	# BSD ps (macOS): -E appends the environment to the command, space-separated.
	line=$(ps -E -ww -o command= -p "$pid" 2>/dev/null) || return 1
	[[ $line == *" $entry" || $line == *" $entry "* ]]
}

# Prints the command line of PID from the snapshot; fails when PID is not running.
args_of() {
	local i
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		if [[ ${PS_PIDS[i]} == "$1" ]]; then
			printf '%s' "${PS_ARGS[i]}"
			return 0
		fi
	done
	return 1
}

# is_project_server PID ARGS: a Jupyter server of this project. One app.sh launched
# (is_app_server_args) works in this project's directory (jupyverse: in its notebook
# directory, and app.sh's runtime record of it is here): the same directory, whatever
# the paths in its command line say (the
# project moved or renamed, ' --' in a name); /proc tells at no cost, elsewhere lsof is
# asked only about servers launched from this project's path or whose runtime file is in
# this project (it moved with it). A jupyverse started before
# a copier update changed notebook_dir carries the project marker in its environment
# (read exactly from /proc). A server started by hand serves the notebook directory: its
# --notebook-dir (the words up to the next option), as written or relative to its
# working directory. Anything not launched by app.sh was started by hand.
is_project_server() {
	local pid=$1 args=$2 dir cwd
	[[ $args == *jupyter* ]] || is_app_jupyverse "$args" || return 1
	[[ $args == *" --notebook-dir="* ]] || return 1
	if is_app_server_args "$args"; then
		if is_app_jupyverse "$args"; then
			# Its directory is the notebook directory, which may be the root of a project
			# nested there: app.sh's runtime record of it must be in this project too.
			[[ -f $JUPYTER_RUNTIME_DIR/jpserver-$pid.json ]] && cwd=$(process_cwd "$pid") && [[ $cwd -ef $NOTEBOOK_DIR ]] &&
				return 0
		elif [[ -e /proc/$pid/cwd || $args == *" --notebook-dir=$PROJECT_ROOT"* || -f $JUPYTER_RUNTIME_DIR/jpserver-$pid.json ]] &&
			cwd=$(process_cwd "$pid") && [[ $cwd -ef $PROJECT_ROOT ]]; then
			return 0
		fi
		[[ -r /proc/$pid/environ ]] && process_has_env "$pid" "$SERVER_MARKER" "$PROJECT_ROOT"
		return
	fi
	dir=${args##*" --notebook-dir="}
	dir=${dir%%" --"*}
	[[ -n $dir ]] || return 1
	if [[ $dir != /* ]]; then
		cwd=$(process_cwd "$pid") || return 1
		dir=$cwd/$dir
	fi
	[[ $dir -ef $NOTEBOOK_DIR ]]
}

# The command line of a server app.sh launches (jupyter-server's, or the jupyverse launcher's).
is_app_server_args() { [[ $1 == *" --ServerApp.port_retries=0"* ]] || is_app_jupyverse "$1"; }

# app.sh's jupyverse: JUPYVERSE_LAUNCHER, whose arguments name it "jupyverse" before
# its --notebook-dir (the command line is the venv's python -c ...).
is_app_jupyverse() { [[ $1 == *" jupyverse --notebook-dir="* ]]; }

# Sets RUNNING_OLD_SERVER to the server the tracked server is (jupyter-server or
# jupyverse) when that is not SERVER any more (a copier update switched it while it
# ran), else to nothing.
find_running_old_server() {
	local args kind=jupyter-server
	RUNNING_OLD_SERVER=""
	[[ -n $TRACKED_PID ]] && args=$(args_of "$TRACKED_PID") || return 0
	is_app_jupyverse "$args" && kind=jupyverse
	[[ $kind == "$SERVER" ]] || RUNNING_OLD_SERVER=$kind
}

# A kernel whose connection file is in this project's runtime directory: started by a
# server of this project, or by any Jupyter tool run with the project's variables
# (jupyter kernel, console, nbconvert, papermill, nbclient).
is_project_kernel() { [[ $1 == *" -f $JUPYTER_RUNTIME_DIR/kernel-"* ]]; }

# The kernel PID, child of PPID, is a leftover of this project's server: its launcher is
# gone (reparented to PID 1, or to a subreaper: its JPY_PARENT_PID, set by the
# launcher, no longer names its parent) and an app.sh server of this project launched
# it (the marker app.sh gives its servers, which their kernels inherit). A kernel whose
# launcher lives, or whose environment cannot be read, is never a leftover.
is_leftover_kernel() {
	local pid=$1 ppid=$2
	process_has_env "$pid" "$SERVER_MARKER" "$PROJECT_ROOT" || return 1
	[[ $ppid == 1 ]] && return 0
	! process_has_env "$pid" JPY_PARENT_PID "$ppid"
}

# Any Jupyter server (lab, notebook, bare server, or jupyverse run by its script), not a
# kernel. The regular expression sits in a variable: bash 3.2 cannot parse one with
# parentheses in [[ ]].
readonly JUPYTER_SERVER_RE='jupyter[-_ ](lab|notebook|server)([[:space:]]|$)'

# Their subcommands that do not serve (`jupyter lab build`, `jupyter server list`, ...).
readonly JUPYTER_TOOL_RE='jupyter[-_ ](lab|notebook|server) +(build|clean|list|stop|paths|path|workspaces?|extension|labextension|password|kernelspec)([[:space:]]|$)'

is_jupyter_server() {
	[[ $1 != *ipykernel* && ! $1 =~ $JUPYTER_TOOL_RE ]] || return 1
	[[ $1 =~ $JUPYTER_SERVER_RE || $1 == *" -m jupyterlab"* || $1 == *"/bin/jupyverse" || $1 == *"/bin/jupyverse "* ]] ||
		is_app_jupyverse "$1"
}

# A Jupyter server started by hand for this project: with the project's own venv, or
# (where /proc or lsof tells) from the project or notebook directory. Another project's
# server names its own notebook directory and is never this project's.
is_hand_started_server() {
	local pid=$1 args=$2
	is_jupyter_server "$args" || return 1
	[[ $args != *" --notebook-dir="* ]] || return 1
	[[ $args == *"$JUPYTER_VENV/bin/"* || $args == *"$VENV_DIR/bin/"* ]] && return 0
	local cwd
	cwd=$(process_cwd "$pid") || return 1
	[[ $cwd -ef $PROJECT_ROOT || $cwd -ef $NOTEBOOK_DIR ]]
}

# Prints the working directory of process PID: /proc on Linux, lsof elsewhere (macOS).
process_cwd() {
	if [[ -e /proc/$1/cwd ]]; then
		printf '%s' "/proc/$1/cwd"
		return 0
	fi
	[[ ! -d /proc/$$ ]] && command -v lsof >/dev/null 2>&1 || return 1
	local line
	while IFS= read -r line; do
		case $line in n/*)
			printf '%s' "${line#n}"
			return 0
			;;
		esac
	done <<<"$(lsof -a -d cwd -p "$1" -Fn 2>/dev/null)"
	return 1
}

# Sets TRACKED_PID to the PID file's PID when it is this project's running server,
# else empty; STALE_PID to the PID of a PID file that does not name one.
read_pid_file() {
	TRACKED_PID="" STALE_PID="" PID_FILE_IN_USE=$PID_FILE
	local pid="" args
	if [[ ! -f $PID_FILE ]]; then
		[[ -f $LEGACY_PID_FILE ]] || return 0
		PID_FILE_IN_USE=$LEGACY_PID_FILE
	fi
	read -r pid 2>/dev/null <"$PID_FILE_IN_USE" || true
	if ! [[ $pid =~ ^[1-9][0-9]{0,9}$ ]]; then
		STALE_PID='?' # empty or junk: names no process
	elif args=$(args_of "$pid") && is_project_server "$pid" "$args"; then
		TRACKED_PID=$pid
	else
		STALE_PID=$pid
	fi
}

# Classifies this project's processes other than the tracked server:
# ORPHAN_APP_SERVERS (started by app.sh, PID file lost), FOREIGN_SERVERS (started by
# hand in this project), STRAY_KERNELS (kernels no live server of ours owns).
find_project_processes() {
	ORPHAN_APP_SERVERS=() FOREIGN_SERVERS=() STRAY_KERNELS=()
	local i pid args live_servers=" "
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		pid=${PS_PIDS[i]} args=${PS_ARGS[i]}
		if is_project_server "$pid" "$args"; then
			live_servers+="$pid "
			[[ $pid == "$TRACKED_PID" ]] && continue
			if is_app_server_args "$args"; then ORPHAN_APP_SERVERS+=("$pid"); else FOREIGN_SERVERS+=("$pid"); fi
		elif [[ $pid != "$TRACKED_PID" ]] &&
			{ [[ -f $JUPYTER_RUNTIME_DIR/jpserver-$pid.json && $args == *jupyter* ]] || is_hand_started_server "$pid" "$args"; }; then
			live_servers+="$pid "
			FOREIGN_SERVERS+=("$pid")
		fi
	done
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		is_project_kernel "${PS_ARGS[i]}" || continue
		[[ $live_servers != *" ${PS_PPIDS[i]} "* ]] || continue
		is_leftover_kernel "${PS_PIDS[i]}" "${PS_PPIDS[i]}" && STRAY_KERNELS+=("${PS_PIDS[i]}")
	done
	return 0
}

# PID still runs: kill -0 finds it and, where /proc tells (read by bash, nothing spawned),
# it is not a zombie. A server app.sh started was re-parented when app.sh exited, and a
# new parent may reap late or never (a container's PID 1 that is not an init): a zombie
# has exited. Without /proc (macOS), terminate's snapshots see through zombies.
process_running() {
	kill -0 "$1" 2>/dev/null || return 1
	local stat
	[[ -r /proc/$1/stat ]] || return 0
	read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
	stat=${stat##*) } # the state follows the command name, which may hold ') '
	[[ ${stat:0:1} != Z ]]
}

# Sends TERM to the PIDs, waits up to TIMEOUT seconds, then KILLs the survivors.
# A PID is re-checked against the snapshot's command line before each signal, so a
# PID that died and was reused meanwhile is never signalled. The wait polls with
# process_running (nothing spawned) and takes a snapshot only every ~0.2 s.
terminate() {
	local timeout=$1 pid i passes=0 deadline
	shift
	TERMINATE_KILLED=0
	# $SECONDS ticks in whole seconds: +1 so the grace is never shorter than asked.
	deadline=$((SECONDS + timeout + 1))
	local -a pids=() cmdlines=() alive=()
	for pid in "$@"; do
		pids+=("$pid")
		cmdlines+=("$(args_of "$pid" || true)")
		kill -TERM "$pid" 2>/dev/null || true
		# A stopped process acts on TERM only once continued.
		kill -CONT "$pid" 2>/dev/null || true
	done
	while :; do
		alive=()
		if ((++passes % 10 == 0 || SECONDS >= deadline)); then
			load_process_table
			for ((i = 0; i < ${#pids[@]}; i++)); do
				[[ -n ${cmdlines[i]} && "$(args_of "${pids[i]}" || true)" == "${cmdlines[i]}" ]] && alive+=("${pids[i]}")
			done
		else
			for pid in "${pids[@]}"; do
				process_running "$pid" && alive+=("$pid")
			done
		fi
		((${#alive[@]} == 0)) && return 0
		if ((SECONDS >= deadline)); then
			warn "PID ${alive[*]} did not stop within ${timeout}s; killing it"
			kill -KILL "${alive[@]}" 2>/dev/null || true
			TERMINATE_KILLED=1
			sleep 0.2
			return 0
		fi
		sleep "$POLL_INTERVAL"
	done
}

# Spec section 9: drop runtime files of servers that are gone (their PID is not a
# running Jupyter process). Kernel connection files are dropped only while no server
# of this project runs, since a live server may be starting a kernel from one.
cleanup_stale_runtime() {
	STALE_RUNTIME_FILES=0
	[[ -d $JUPYTER_RUNTIME_DIR ]] || return 0
	local file pid args any_server=0
	for file in "$JUPYTER_RUNTIME_DIR"/jpserver-*.json; do
		[[ -e $file ]] || continue
		pid=${file##*/jpserver-}
		pid=${pid%.json}
		# The snapshot may predate a stop that just ended this server: ask the process too.
		if process_running "$pid" && args=$(args_of "$pid") && { [[ $args == *jupyter* ]] || is_app_jupyverse "$args"; }; then
			any_server=1
		else
			rm -f "$file" "${file%.json}-open.html"
			STALE_RUNTIME_FILES=$((STALE_RUNTIME_FILES + 1))
		fi
	done
	((any_server)) && return 0
	# app-token-*: a token file whose server died before reading it.
	rm -f "$JUPYTER_RUNTIME_DIR/app-open.html" "$JUPYTER_RUNTIME_DIR"/app-token-*
	((${#STRAY_KERNELS[@]} > 0)) && return 0
	# Other Jupyter tools run with the project's variables (jupyter kernel, nbclient)
	# keep their connection files here too: a file goes only when no live process names
	# it and it is over a minute old (a tool may be about to start its kernel).
	local live=" ${PS_ARGS[*]-} "
	while IFS= read -r file; do
		[[ -n $file && $live != *" -f $file "* && $live != *"=$file "* ]] || continue
		rm -f "$file"
	done <<<"$(find "$JUPYTER_RUNTIME_DIR" -maxdepth 1 -name 'kernel-*.json' -mmin +1 2>/dev/null)"
	return 0
}
