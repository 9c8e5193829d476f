# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/doctor.sh: doctor: the project audited against the lifecycle spec, one line a requirement.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

DOCTOR_FAILURES=0

# check VERDICT REQUIREMENT DETAIL...: one line of doctor's report.
check() {
	local verdict=$1 requirement=$2
	shift 2
	local detail="$*"
	[[ $verdict == FAIL ]] && DOCTOR_FAILURES=$((DOCTOR_FAILURES + 1))
	printf '%-4s  %-45s %s\n' "$verdict" "$requirement" "$detail"
}

# Entries of spec section 10 (and the venv) that git would not ignore.
unignored_entries() {
	local entry missing=""
	for entry in .jupyter_config .jupyter_data .jupyter_runtime .ipython .cache .logs .run .venv .jupyter_venv; do
		if git -C "$PROJECT_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
			git -C "$PROJECT_ROOT" check-ignore -q "$entry/" 2>/dev/null || missing+=" $entry/"
		elif ! grep -qxE "/?\\$entry/?" "$PROJECT_ROOT/.gitignore" 2>/dev/null; then
			missing+=" $entry/"
		fi
	done
	printf '%s' "${missing# }"
}

cmd_doctor() {
	local offline=0
	case ${1:-} in
	"") ;;
	--offline) offline=1 ;;
	*) usage_error "doctor: unknown option '$1'" ;;
	esac
	(($# <= 1)) || usage_error "doctor: unexpected argument '$2'"
	gather_status
	dependency_files
	local dir missing="" user_kernel="" mode
	for dir in "$JUPYTER_CONFIG_DIR" "$JUPYTER_DATA_DIR" "$JUPYTER_RUNTIME_DIR" "$IPYTHONDIR" "$MPLCONFIGDIR"; do
		[[ -d $dir ]] || missing+=" $(rel "$dir")"
	done
	if [[ -z $missing ]]; then
		check PASS "isolated Jupyter directories (spec 1)" "set by app.sh before any jupyter command; all five exist"
	else
		check FAIL "isolated Jupyter directories (spec 1)" "missing:$missing; run: scripts/app.sh bootstrap"
	fi
	if [[ -z $SETTING_PROBLEMS ]]; then
		check PASS "settings" "the environment's APP_* and $(rel "$LOCAL_CONFIG") are valid"
	else
		local problem
		while IFS= read -r problem; do
			[[ -z $problem ]] || check FAIL "settings" "$problem"
		done <<<"$SETTING_PROBLEMS"
	fi
	missing=$(unignored_entries)
	if [[ -z $missing ]]; then
		check PASS "git-ignored state (spec 10)" "every isolation, process and venv directory is ignored"
	else
		check FAIL "git-ignored state (spec 10)" "not ignored: $missing; add them to .gitignore (copier update does)"
	fi
	template_files_check
	notebook_checks
	import_check
	excluded_packages_present
	if [[ -z $EXCLUDED_PRESENT ]]; then
		check PASS "nothing that only slows the start" "${EXCLUDED_PACKAGES:-nothing excluded (APP_EXCLUDE is empty)}${EXCLUDED_PACKAGES:+ not in the venv}"
	else
		check WARN "nothing that only slows the start" "$EXCLUDED_PRESENT in the venv costs every start ~1 s; remove it: scripts/app.sh bootstrap --force"
	fi
	if [[ $STATUS_VENV == ok ]] && bootstrap_is_current; then
		check PASS "venv bootstrapped" "$(rel "$JUPYTER_VENV") ($SERVER); $(rel "$VENV_DIR"), Python $PYTHON_VERSION, $(env_owner_words)"
	elif [[ $STATUS_VENV == previous ]]; then
		check FAIL "venv bootstrapped" "JupyterLab is in $(rel "$VENV_DIR"), as an earlier release laid it out; move it to" \
			"$(rel "$JUPYTER_VENV") with: scripts/app.sh start (restart, while it runs)"
	elif [[ $ENV_STATE != ok ]]; then
		check FAIL "venv bootstrapped" "the project's environment $(rel "$VENV_DIR") is $ENV_STATE; run: scripts/app.sh bootstrap"
	elif [[ $STATUS_VENV == switched ]]; then
		check FAIL "venv bootstrapped" "made for $(other_server), and the server is now $SERVER; run: scripts/app.sh restart (or bootstrap)"
	elif [[ $STATUS_VENV != ok ]]; then
		check FAIL "venv bootstrapped" "the venv is $STATUS_VENV; run: scripts/app.sh bootstrap"
	elif project_moved; then
		check FAIL "venv bootstrapped" "the project moved from $STAMPED_ROOT since; run: scripts/app.sh bootstrap"
	elif [[ $STAMPED_DEPENDENCIES == failed ]]; then
		check FAIL "venv bootstrapped" "the project's dependencies failed to install (JupyterLab works);" \
			"fix ${DEPENDENCY_FILES[*]-them}, then run: scripts/app.sh bootstrap (it shows the installer's reason)"
	else
		check FAIL "venv bootstrapped" "dependency files or the kernel changed since the last bootstrap; run: scripts/app.sh bootstrap"
	fi
	if kernel_spec_is_current; then
		check PASS "kernel in the venv (spec 2)" "'$PROJECT_NAME' with IPYTHONDIR and MPLCONFIGDIR of this project"
	else
		check FAIL "kernel in the venv (spec 2)" "'$PROJECT_NAME' missing, or not naming this venv's Python and this project's IPYTHONDIR and MPLCONFIGDIR; run: scripts/app.sh bootstrap"
	fi
	if [[ $PROJECT_NAME != python3 && -d $SERVER_NATIVE_KERNEL_DIR ]]; then
		check FAIL "only the project's kernel (spec 2)" "$(rel "$SERVER_NATIVE_KERNEL_DIR") ('Python 3 (ipykernel)', the server's" \
			"own Python) would be offered beside '$PROJECT_NAME'; remove it: scripts/app.sh bootstrap"
	elif [[ $PROJECT_NAME != python3 && -d $NATIVE_KERNEL_DIR ]] && ! venv_is_ours; then
		check WARN "only the project's kernel (spec 2)" "$(rel "$NATIVE_KERNEL_DIR") ('Python 3 (ipykernel)', from the project's own" \
			"ipykernel) runs without this project's IPYTHONDIR and MPLCONFIGDIR; it is ${ENV_OWNER}'s file, which app.sh leaves: choose '$DISPLAY_NAME'"
	elif [[ $PROJECT_NAME == python3 || ! -d $NATIVE_KERNEL_DIR ]]; then
		check PASS "only the project's kernel (spec 2)" "no 'Python 3 (ipykernel)' beside '$PROJECT_NAME'"
	else
		check FAIL "only the project's kernel (spec 2)" "$(rel "$NATIVE_KERNEL_DIR") ('Python 3 (ipykernel)', which an install of" \
			"ipykernel brings back) runs without this project's IPYTHONDIR and MPLCONFIGDIR; remove it: scripts/app.sh bootstrap"
	fi
	for dir in "$HOME/.local/share/jupyter/kernels" "$HOME/Library/Jupyter/kernels"; do
		[[ -d $dir/$PROJECT_NAME ]] && user_kernel=$dir/$PROJECT_NAME
	done
	if [[ -z $user_kernel ]]; then
		check PASS "no kernel of that name for the user (spec 2)" "no '$PROJECT_NAME' in the user's kernel directory"
	else
		check FAIL "no kernel of that name for the user (spec 2)" "$user_kernel collides; remove it: jupyter kernelspec remove $PROJECT_NAME"
	fi
	if [[ -f $LEGACY_PID_FILE ]]; then
		check WARN "PID file location (spec 4)" "$(rel "$LEGACY_PID_FILE") (allowed); scripts/app.sh restart moves it to $(rel "$PID_FILE")"
	else
		check PASS "PID file location (spec 4)" "$(rel "$PID_FILE")"
	fi
	if [[ $SERVER_STATE == running ]] && ((SERVER_PORT < PORT_RANGE_START || SERVER_PORT > PORT_RANGE_END)); then
		check WARN "free port from a range (spec 5)" "the server runs on $SERVER_PORT, outside $PORT_RANGE_START-$PORT_RANGE_END (chosen with --port)"
	else
		check PASS "free port from a range (spec 5)" "$PORT_RANGE_START-$PORT_RANGE_END, never a fixed 8888"
	fi
	if ((SERVER_NO_AUTH)); then
		check FAIL "token auth on" "the server (PID $TRACKED_PID) $NO_AUTH_MESSAGE"
	fi
	if [[ -n $RUNNING_OLD_SERVER ]]; then
		check FAIL "server of this project" "the running server (PID $TRACKED_PID) is $RUNNING_OLD_SERVER, and the project's is now $SERVER;" \
			"run: scripts/app.sh restart"
	fi
	if [[ $SERVER_STATE == dead ]]; then
		check FAIL "server tracked by its PID file (spec 6)" "$(rel "$PID_FILE_IN_USE") names PID $STALE_PID, which is gone; run: scripts/app.sh stop"
	else
		check PASS "server tracked by its PID file (spec 6)" "$SERVER_STATE${TRACKED_PID:+ (PID $TRACKED_PID)}"
	fi
	((IDLE_TIMEOUT == 0)) || idle_timeout_check
	if ((${#ORPHANS[@]} + ${#STRAY_KERNELS[@]} == 0)); then
		check PASS "no orphan processes (spec 8)" "none"
	else
		check FAIL "no orphan processes (spec 8)" "PID ${ORPHANS[*]:-} ${STRAY_KERNELS[*]:-}; $(orphans_remedy)"
	fi
	check PASS "stale runtime files (spec 9)" "none left (removed just now: $STALE_RUNTIME_FILES)"
	mode=""
	for dir in "$LOG_DIR" "$JUPYTER_RUNTIME_DIR"; do
		[[ -d $dir ]] || continue
		[[ -n $(find "$dir" -maxdepth 0 -perm -o=r 2>/dev/null) || -n $(find "$dir" -maxdepth 0 -perm -g=r 2>/dev/null) ]] && mode+=" $(rel "$dir")"
	done
	if [[ -z $mode ]]; then
		check PASS "token files private" ".logs and .jupyter_runtime readable by their owner only"
	else
		check FAIL "token files private" "readable by others:$mode; fix: chmod 700$mode"
	fi
	if [[ $SERVER == jupyverse ]]; then
		# Measured with jupyverse 0.14.18: an authenticated GET /api/contents/%2Fetc%2Fhostname answers 200.
		check WARN "server: jupyverse" "its contents API is not confined to $(rel_dir "$NOTEBOOK_DIR"): anyone with the" \
			"token reads and writes any file this user can; state in $(rel "$JUPYVERSE_STATE_DIR")"
		# Measured with jupyverse 0.14.18: three cells sent at once, the second failing, end the server.
		check WARN "jupyverse: failing cells" "a cell waiting in the kernel behind a failing one stops the whole server" \
			"(KeyError 'execution_count' in fps_kernels); scripts/app.sh run sends one cell at a time"
	fi
	template_check "$offline"
	if ((DOCTOR_FAILURES > 0)); then
		say "$DOCTOR_FAILURES requirement(s) not met; each FAIL line says how to fix it"
		return "$EXIT_FAILURE"
	fi
	return 0
}

# APP_IDLE_TIMEOUT: kept by jupyter-server (and by the running server, when one runs);
# jupyverse has no such thing.
idle_timeout_check() {
	local what="APP_IDLE_TIMEOUT=$IDLE_TIMEOUT"
	if [[ $SERVER == jupyverse ]]; then
		check FAIL "idle shutdown" "$what, but jupyverse cannot cull idle kernels or stop itself when idle (start refuses);" \
			"remove the setting, or: copier update --trust -d server=jupyter-server"
	elif [[ $SERVER_STATE == running ]] && ! grep -q "Will shut down after $((IDLE_TIMEOUT * 60)) seconds" "$LOG_FILE" 2>/dev/null; then
		check WARN "idle shutdown" "$what, but the running server was started without it; run: scripts/app.sh restart"
	else
		check PASS "idle shutdown" "$what: idle kernels no browser shows are culled, then the server stops itself after" \
			"$IDLE_TIMEOUT min without activity (never with a busy kernel)"
	fi
}

# The files the template renders, one a line: the ones the managed .gitignore block
# keeps tracked (its !/ entries, which hooks/gitignore_block.py takes from the template
# itself), and app.sh, its parts and the answers file, which app.sh knows anyway.
template_files() {
	local line in_block=0 part
	printf '%s\n' scripts/app.sh "$ANSWERS_FILE"
	for part in $APP_PARTS; do
		printf '%s\n' "scripts/app.d/$part.sh"
	done
	[[ -f $PROJECT_ROOT/.gitignore ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		case $line in
		"# >>> jupyter-template:"*) in_block=1 ;;
		"# <<< jupyter-template <<<") in_block=0 ;;
		'!/'*[!/])
			# A file (a folder ends with '/'), unescaped as git reads it.
			if ((in_block)); then
				line=${line#!/}
				printf '%s\n' "${line//\\/}"
			fi
			;;
		esac
	done <"$PROJECT_ROOT/.gitignore"
}

# A template file git ignores never reaches a clone, which then breaks: a pattern of the
# project's (venv*, *.sh) after the managed block, or in a folder's own .gitignore, wins
# over the block's !entries. A tracked file is never ignored, so `git add -f` fixes it.
template_files_check() {
	local file ignored=() shown=""
	if ! git -C "$PROJECT_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		check SKIP "template files tracked by git" "not a git repository"
		return 0
	fi
	while IFS= read -r file; do
		[[ -z $file ]] && continue
		ignored+=("$file")
		shown+=" $(printf '%q' "$file")"
	done <<<"$(cd "$PROJECT_ROOT" && template_files | sort -u | while IFS= read -r file; do
		[[ -z $file || ! -f $file ]] || printf '%s\0' "$file"
	done | git check-ignore -z --stdin 2>/dev/null | tr '\0' '\n')"
	if ((${#ignored[@]} == 0)); then
		check PASS "template files tracked by git" "git ignores none of the files the template renders"
	else
		check FAIL "template files tracked by git" "git ignores ${ignored[*]}, so a clone lacks them (a .gitignore line after" \
			"the managed block, or in a folder, wins over its !entries); track them: git add -f$shown"
	fi
}

# JupyterLab's root holds the project's notebooks, and git keeps what is made there.
notebook_checks() {
	local outside=() file shown
	if [[ -d $NOTEBOOK_DIR ]]; then
		check PASS "JupyterLab's root exists" "$(rel_dir "$NOTEBOOK_DIR")"
	else
		check FAIL "JupyterLab's root exists" "$(rel_dir "$NOTEBOOK_DIR") is missing$(missing_root_remedy)"
	fi
	while IFS= read -r file; do
		[[ -n $file && $file != "$NOTEBOOK_DIR"/* ]] && outside+=("$(rel "$file")")
	done <<<"$(project_notebooks)"
	if ((${#outside[@]} == 0)); then
		check PASS "notebooks inside JupyterLab's root" "root: $(rel_dir "$NOTEBOOK_DIR") (notebook_dir)"
	else
		shown="${outside[*]:0:3}"
		((${#outside[@]} <= 3)) || shown+=" and $((${#outside[@]} - 3)) more"
		check FAIL "notebooks inside JupyterLab's root" "outside $(rel_dir "$NOTEBOOK_DIR"), so JupyterLab cannot open them: $shown;" \
			"fix: copier update --trust -d notebook_dir=FOLDER (the folder that holds them, '.' for the top level)"
	fi
	if [[ $NOTEBOOK_DIR != "$PROJECT_ROOT" ]] && git -C "$PROJECT_ROOT" rev-parse --git-dir >/dev/null 2>&1 &&
		git -C "$PROJECT_ROOT" check-ignore -q "$NOTEBOOK_DIR/" 2>/dev/null; then
		check FAIL "notebook folder tracked by git" "git ignores $(rel_dir "$NOTEBOOK_DIR"): notebooks made there are never committed;" \
			"fix .gitignore (e.g. add !$(rel_dir "$NOTEBOOK_DIR")) or choose another notebook_dir"
	else
		check PASS "notebook folder tracked by git" "$(rel_dir "$NOTEBOOK_DIR") is not git-ignored"
	fi
}

import_check() {
	local missing
	if [[ $STATUS_VENV != ok ]]; then
		check SKIP "notebook imports installed" "no venv yet"
		return 0
	fi
	missing=$(missing_imports)
	if [[ -z $missing ]]; then
		check PASS "notebook imports installed" "every package the notebooks import is in the venv"
	else
		check WARN "notebook imports installed" "not installed: ${missing//$'\n'/, }; $(missing_imports_remedy "$STAMPED_DEPENDENCIES")"
	fi
}

# The project's notebooks, one path a line: hidden folders (.venv, .git, checkpoints)
# and tool folders left out.
project_notebooks() {
	find "$PROJECT_ROOT" -mindepth 1 \( -name '.*' -o -name node_modules -o -name __pycache__ -o -name site-packages \) \
		-prune -o -name '*.ipynb' -type f -print 2>/dev/null
}

# A directory relative to the project, '.' for the project itself, with a trailing '/'.
rel_dir() {
	if [[ $1 == "$PROJECT_ROOT" ]]; then printf './'; else printf '%s/' "$(rel "$1")"; fi
}

# Whether the venv's kernel spec names this venv's Python and this project's
# IPYTHONDIR and MPLCONFIGDIR (parsed as JSON: a path may hold quotes).
kernel_spec_is_current() {
	[[ -f $KERNEL_SPEC && -x $JUPYTER_PYTHON ]] || return 1
	"$JUPYTER_PYTHON" -I -S -c '
import json, os, sys
spec = json.load(open(sys.argv[1], encoding="utf-8"))
env, argv = spec.get("env", {}), spec.get("argv", [""])
ok = env.get("IPYTHONDIR") == sys.argv[2] and env.get("MPLCONFIGDIR") == sys.argv[3]
sys.exit(0 if ok and os.path.exists(argv[0]) else 1)' "$KERNEL_SPEC" "$IPYTHONDIR" "$MPLCONFIGDIR" 2>/dev/null
}

# Whether a newer template version exists, as copier itself tells (`copier
# check-update` asks the template's repository, over the network). The copier used is
# the one on PATH, else the one uv has cached (uvx --offline: the copier the project
# was made with, most likely); app.sh never downloads one. --offline skips the check.
template_check() {
	local offline=$1 output status=0
	local -a copier=()
	if ((offline)); then
		check SKIP "template up to date" "not checked (--offline)"
		return 0
	fi
	if command -v copier >/dev/null 2>&1; then
		copier=(copier)
	elif command -v uvx >/dev/null 2>&1 && uvx --offline --quiet copier --version >/dev/null 2>&1; then
		copier=(uvx --offline --quiet copier)
	fi
	local answers=()
	[[ $ANSWERS_FILE == .copier-answers.yml ]] || answers=(--answers-file "$ANSWERS_FILE")
	if [[ ! -f $PROJECT_ROOT/$ANSWERS_FILE ]]; then
		check SKIP "template up to date" "no $ANSWERS_FILE: not made with copier"
		return 0
	elif ((${#copier[@]} == 0)); then
		check SKIP "template up to date" "no copier here (on PATH or in uv's cache); check with: uvx copier check-update"
		return 0
	fi
	output=$(cd "$PROJECT_ROOT" && GIT_TERMINAL_PROMPT=0 run_with_timeout 8 "${copier[@]}" check-update --quiet ${answers[@]+"${answers[@]}"} 2>&1) || status=$?
	case $status in
	0) check PASS "template up to date" "jupyter-template $TEMPLATE_VERSION is the newest (copier check-update)" ;;
	2) check FAIL "template up to date" "a newer jupyter-template exists; run: copier update --trust ${answers[*]-}" ;;
	124) check SKIP "template up to date" "the template's repository did not answer within 8 s (offline?); use doctor --offline" ;;
	*) check SKIP "template up to date" "copier check-update could not tell (offline?): ${output%%$'\n'*}" ;;
	esac
}

# Runs a command for at most SECONDS, in a process group of its own, so that on time-out
# it is killed with everything it started (git, for copier); exits 124 then. macOS has
# no timeout(1): Python does it, the venv's or the system's.
run_with_timeout() {
	local python=$JUPYTER_PYTHON
	[[ -x $python ]] || python=$(command -v python3) || {
		"${@:2}"
		return
	}
	"$python" -I -S -c '
import os, signal, subprocess, sys
child = subprocess.Popen(sys.argv[2:], start_new_session=True)
try:
    sys.exit(child.wait(timeout=float(sys.argv[1])))
except subprocess.TimeoutExpired:
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    sys.exit(124)' "$@"
}

# What ends the orphans: app.sh stop for what it started, kill for the servers it did not.
orphans_remedy() {
	local -a ours=(${ORPHAN_APP_SERVERS[@]+"${ORPHAN_APP_SERVERS[@]}"} ${STRAY_KERNELS[@]+"${STRAY_KERNELS[@]}"})
	if ((${#FOREIGN_SERVERS[@]} == 0)); then
		printf 'run: scripts/app.sh stop'
	elif ((${#ours[@]} == 0)); then
		printf 'not started by this app.sh, which leaves them: kill %s' "${FOREIGN_SERVERS[*]}"
	else
		printf 'run: scripts/app.sh stop, then for the servers it did not start: kill %s' "${FOREIGN_SERVERS[*]}"
	fi
}
