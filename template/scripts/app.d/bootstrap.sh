# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/bootstrap.sh: the server's environment (.jupyter_venv), the project's (.venv), the kernel.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# --- the two environments -----------------------------------------------------------
# The server (JupyterLab or jupyverse, server-side execution, app.sh's helpers) lives in
# .jupyter_venv, which app.sh alone makes and changes. The kernel runs the project's
# environment, .venv: its Python and its packages. With a lock (uv.lock, poetry.lock,
# pdm.lock) .venv is its tool's, which makes it exactly the lock: app.sh only asks the
# tool to, and never writes pyproject.toml or the lock. Without one, app.sh installs into
# .venv what requirements.txt and pyproject.toml declare. ipykernel is in neither: it is
# installed for the project's Python into .jupyter_venv/kernel (KERNEL_SUPPORT), which
# scripts/ipykernel_launcher.py adds after the project's own packages, so no `uv sync` can
# take it away and the project's versions always win.

# Sets ENV_OWNER, who owns the project's environment: uv, poetry or pdm (the project has
# that tool's lock, LOCK_FILE) or app (no lock: app.sh).
find_env_owner() {
	local owner
	ENV_OWNER=app LOCK_FILE=""
	for owner in uv poetry pdm; do
		if [[ -f $PROJECT_ROOT/$owner.lock ]]; then
			ENV_OWNER=$owner LOCK_FILE=$owner.lock
			return 0
		fi
	done
	return 0
}

# What bootstrap installs of the project, from its files and settings: ENV_OWNER
# (find_env_owner); DEPENDENCY_FILES (relative to the project: requirements.txt,
# pyproject.toml, the lock); without a lock, PROJECT_INSTALL_ARGS (the installer's
# arguments for them) and PROJECT_PACKAGE (1 when pyproject.toml builds a package:
# installed editable, so the notebooks import the project's own code).
# APP_EXTRAS and APP_GROUPS (comma-separated) choose extras and dependency groups.
dependency_files() {
	local extra group extras="" list
	DEPENDENCY_FILES=() PROJECT_INSTALL_ARGS=() PROJECT_PACKAGE=0
	find_env_owner
	if [[ $ENV_OWNER != app ]]; then
		[[ ! -f $PROJECT_ROOT/pyproject.toml ]] || DEPENDENCY_FILES+=(pyproject.toml)
		DEPENDENCY_FILES+=("$LOCK_FILE")
		return 0
	fi
	# A requirements.txt of comments only (as the template creates it) declares nothing.
	if [[ -f $PROJECT_ROOT/requirements.txt ]] && grep -q '^[[:space:]]*[^#[:space:]]' "$PROJECT_ROOT/requirements.txt"; then
		DEPENDENCY_FILES+=(requirements.txt)
		PROJECT_INSTALL_ARGS+=(-r "$PROJECT_ROOT/requirements.txt")
	fi
	if [[ -f $PROJECT_ROOT/pyproject.toml ]]; then
		list=${APP_EXTRAS:-}
		for extra in ${list//,/ }; do extras+=${extras:+,}$extra; done
		if grep -q '^\[build-system\]' "$PROJECT_ROOT/pyproject.toml"; then
			DEPENDENCY_FILES+=(pyproject.toml)
			PROJECT_PACKAGE=1
			PROJECT_INSTALL_ARGS+=(-e "$PROJECT_ROOT${extras:+[$extras]}")
		elif grep -q '^\[project\]' "$PROJECT_ROOT/pyproject.toml"; then
			DEPENDENCY_FILES+=(pyproject.toml)
			PROJECT_INSTALL_ARGS+=(-r "$PROJECT_ROOT/pyproject.toml")
			for extra in ${list//,/ }; do PROJECT_INSTALL_ARGS+=(--extra "$extra"); done
		fi
		list=${APP_GROUPS:-}
		for group in ${list//,/ }; do PROJECT_INSTALL_ARGS+=(--group "$PROJECT_ROOT/pyproject.toml:$group"); done
		# Groups alone (no package, no [project]) still make pyproject.toml a dependency file.
		if [[ -n $list && " ${DEPENDENCY_FILES[*]-} " != *" pyproject.toml "* ]]; then DEPENDENCY_FILES+=(pyproject.toml); fi
	fi
	return 0
}

# The server's packages this project's options call for (REQUIREMENTS).
jupyter_requirements() {
	REQUIREMENTS=("${JUPYTER_REQUIREMENTS[@]}")
	if [[ $SERVER == jupyverse ]]; then
		# Its own executor and shared documents: jupyter-server's extensions do not apply.
		REQUIREMENTS=("${JUPYVERSE_REQUIREMENTS[@]}")
		return 0
	fi
	if [[ $SERVER_SIDE_EXECUTION == true ]]; then REQUIREMENTS+=("${SERVER_SIDE_EXECUTION_REQUIREMENTS[@]}"); fi
	return 0
}

# Prints the version of the Python of the venv DIR (default: the project's), from its
# pyvenv.cfg (venv writes version, uv version_info), as X.Y.Z, or nothing.
venv_python_version() {
	local line key value found=""
	while IFS= read -r line; do
		key=${line%%=*} value=${line#*=}
		key=${key//[[:space:]]/} value=${value//[[:space:]]/}
		# virtualenv (poetry, pdm) writes version_info = 3.11.7.final.0 beside version = 3.11.7.
		case $key in version | version_info) [[ -n $found ]] || found=$value ;; esac
	done 2>/dev/null <"${1:-$VENV_DIR}/pyvenv.cfg" || true
	local re='^[0-9]+\.[0-9]+(\.[0-9]+)?' # in a variable: bash 3.2 cannot parse ( in [[ ]]
	if [[ $found =~ $re ]]; then
		printf '%s' "${BASH_REMATCH[0]}"
	elif [[ -x ${1:-$VENV_DIR}/bin/python ]]; then
		# No version in pyvenv.cfg (another tool's, or edited): the Python says.
		"${1:-$VENV_DIR}/bin/python" -I -S -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true
	fi
	return 0
}

# Sets KERNEL_SUPPORT, the directory of ipykernel for the project's Python
# (.jupyter_venv/kernel/pythonX.Y, as scripts/ipykernel_launcher.py looks for it).
kernel_support_path() {
	local version
	version=$(venv_python_version)
	version=${version%.*}
	KERNEL_SUPPORT=$KERNEL_SUPPORT_DIR/python${version:-unknown}
}

# What a bootstrap depends on; a change to any of it makes the next bootstrap work.
bootstrap_fingerprint() {
	local file
	jupyter_requirements
	{
		printf '%s\n' "stamp-v3" "$PROJECT_ROOT" "$PROJECT_NAME" "$DISPLAY_NAME" "${REQUIREMENTS[@]}" \
			"${KERNEL_REQUIREMENTS[@]}" "launcher=$KERNEL_LAUNCHER" "owner=$ENV_OWNER" "python=$(venv_python_version)" \
			"extras=${APP_EXTRAS:-}" "groups=${APP_GROUPS:-}" "exclude=$EXCLUDED_PACKAGES"
		for file in ${DEPENDENCY_FILES[@]+"${DEPENDENCY_FILES[@]}"}; do
			printf '== %s\n' "$file"
			cat "$PROJECT_ROOT/$file"
		done
	} | cksum
}

# What the server's environment depends on: a bootstrap that only the project's side
# changed for (uv add, a new requirement) leaves it alone.
server_fingerprint() {
	jupyter_requirements
	printf '%s\n' "$PROJECT_ROOT" "${REQUIREMENTS[@]}" "exclude=$EXCLUDED_PACKAGES" "sse=$SERVER_SIDE_EXECUTION" | cksum
}

# The server's environment is as the last bootstrap left it, for the same inputs.
server_is_current() {
	local line=""
	{ read -r line && read -r line && read -r line && read -r line; } 2>/dev/null <"$BOOTSTRAP_STAMP" || true
	[[ $line == "server=$(server_fingerprint)" && -x $JUPYTER_LAB ]] && venv_is_healthy "$JUPYTER_VENV"
}

# A venv whose Python runs: DIR (default: the server's).
venv_is_healthy() {
	local python=${1:-$JUPYTER_VENV}/bin/python
	[[ -x $python ]] && "$python" -I -S -c '' 2>/dev/null
}

# uv's relocatable venvs: scripts that find their Python relative to themselves.
venv_is_relocatable() { grep -qx 'relocatable = true' "${1:-$JUPYTER_VENV}/pyvenv.cfg" 2>/dev/null; }

# The project's .venv was made by app.sh (its mark, or the stamp of an earlier release,
# which kept JupyterLab there): app.sh may recreate it, and a sync makes it exact.
venv_is_ours() { [[ -f $VENV_MARK || -f $LEGACY_STAMP ]]; }

# Whether the project moved since the last bootstrap, which recorded its root in the
# stamp (STAMPED_ROOT; empty for a stamp of an older app.sh, which did not).
project_moved() {
	local line=""
	STAMPED_ROOT=""
	{ read -r line && read -r line; } 2>/dev/null <"$BOOTSTRAP_STAMP" || true
	[[ $line == root=* ]] && STAMPED_ROOT=${line#root=}
	[[ -n $STAMPED_ROOT && $STAMPED_ROOT != "$PROJECT_ROOT" ]]
}

# The stamp's third line: the project's dependencies at the last bootstrap (ok, failed,
# none; empty for a stamp of an older app.sh). Sets STAMPED_DEPENDENCIES.
stamped_dependencies() {
	local line=""
	STAMPED_DEPENDENCIES=""
	{ read -r line && read -r line && read -r line; } 2>/dev/null <"$BOOTSTRAP_STAMP" || true
	# Only the words bootstrap writes: anything else in the file is unknown.
	case $line in dependencies=ok | dependencies=failed | dependencies=none) STAMPED_DEPENDENCIES=${line#dependencies=} ;; esac
	return 0
}

# Nothing changed since a bootstrap that installed everything.
bootstrap_is_current() {
	stamped_dependencies
	[[ -x $VENV_PYTHON && -x $JUPYTER_PYTHON && -x $JUPYTER_LAB && -f $KERNEL_SPEC && -f $BOOTSTRAP_STAMP && ! -f $LEGACY_STAMP ]] || return 1
	kernel_support_path
	[[ -d $KERNEL_SUPPORT/ipykernel ]] || return 1
	local stamp=""
	read -r stamp <"$BOOTSTRAP_STAMP" || true
	[[ $stamp == "$(bootstrap_fingerprint)" && $STAMPED_DEPENDENCIES != failed ]]
}

# Sets UV to a uv executable, or empty when the pip route is chosen.
find_uv() {
	UV=""
	[[ ${APP_INSTALLER:-uv} == uv || $ENV_OWNER == uv ]] || return 0
	if [[ -x $JUPYTER_VENV/bin/uv ]]; then
		UV=$JUPYTER_VENV/bin/uv
	elif command -v uv >/dev/null 2>&1; then
		UV=$(command -v uv)
	fi
	return 0
}

# create_venv DIR OURS [PYTHON]: creates the venv DIR with PYTHON (default: APP_PYTHON,
# else python3), replacing what is at its place (the caller said why); never what app.sh
# did not make (OURS 0), nor a link to a venv elsewhere (clearing would empty its target).
create_venv() {
	local dir=$1 ours=$2 python=${3:-${APP_PYTHON:-python3}} clear=()
	if [[ -e $dir || -L $dir ]]; then
		refuse_to_clear_what_is_not_ours "$dir" "$ours"
		clear=(--clear)
	fi
	command -v "$python" >/dev/null 2>&1 || die "no '$python' found; install Python 3 or set APP_PYTHON to an interpreter"
	if [[ -n $UV ]]; then
		say "creating $(rel "$dir") with uv..."
		# --relocatable: its scripts find their Python relative to themselves, so the
		# project can move.
		"$UV" venv --quiet --relocatable ${clear[@]+"${clear[@]}"} --python "$(command -v "$python")" "$dir" >&2 ||
			die "uv could not create $(rel "$dir")"
	else
		say "creating $(rel "$dir") with $python -m venv..."
		"$python" -m venv ${clear[@]+"${clear[@]}"} "$dir" >&2 || die "$python -m venv could not create $(rel "$dir")"
	fi
}

# pip_install [--cache-first] PYTHON ARGS...: installs into PYTHON's environment with uv
# (or pip): the arguments are requirements and installer options (--target DIR: into
# DIR, for PYTHON). uv runs in the project, so relative paths in requirement files
# resolve as written. --cache-first: from uv's cache alone when it can (uv_offline_first),
# for what app.sh pins. The packages APP_EXCLUDE names are kept out of the server's
# environment.
pip_install() {
	local -a uv=("$UV")
	if [[ $1 == --cache-first ]]; then
		uv=(uv_offline_first)
		shift
	fi
	local python=$1
	shift
	if [[ -n $UV ]]; then
		local -a options=()
		install_options
		[[ -z $EXCLUDED_PACKAGES || $python != "$JUPYTER_PYTHON" ]] || options+=(--excludes "$EXCLUDES_FILE")
		(cd "$PROJECT_ROOT" && "${uv[@]}" pip install ${options[@]+"${options[@]}"} --python "$python" "$@") >&2
	else
		# pip reads no pyproject.toml as a requirements file, and has no --extra.
		local -a args=()
		while (($#)); do
			if [[ $1 == --extra ]] || [[ $1 == -r && $2 == */pyproject.toml ]]; then
				shift 2
			else
				args+=("$1")
				shift
			fi
		done
		(cd "$PROJECT_ROOT" && "$python" -m pip install --disable-pip-version-check ${args[@]+"${args[@]}"}) >&2
	fi
}

# uv_offline_first ARGS...: uv ARGS from uv's cache alone when it holds everything (no
# request to the package index: ~0.3 s where asking the index took ~1.5 s here), else
# uv ARGS as usual. For what app.sh pins (the server, ipykernel, the seed packages) and
# for a lock, where the cache cannot answer anything else than the index would.
# Nothing is installed when the cache falls short: uv resolves and fetches first.
uv_offline_first() {
	"$UV" "$@" --offline >/dev/null 2>&1 || "$UV" "$@"
}

# Sets options, uv's options for every install: on a terminal uv shows its progress
# bars, elsewhere (CI, logs) only errors. uv leaves bytecode to Python's first import,
# which caches it, unless told not to (PYTHONDONTWRITEBYTECODE, common in container
# images): then every start would compile JupyterLab's imports again (~3 s on 2 cores).
install_options() {
	[[ -t 2 ]] || options+=(--quiet)
	[[ -z ${PYTHONDONTWRITEBYTECODE:-} ]] || options+=(--compile-bytecode)
	return 0
}

# Step one: the server's venv, whose Python also reads pyproject.toml, and uv in it
# when the machine has none.
ensure_server_venv() {
	((! SERVER_CURRENT)) || return 0
	if ! venv_is_healthy "$JUPYTER_VENV"; then
		[[ ! -e $JUPYTER_VENV ]] || warn "$(rel "$JUPYTER_VENV") is broken (its python does not run); recreating it"
		create_venv "$JUPYTER_VENV" 1
	elif project_moved && ! venv_is_relocatable "$JUPYTER_VENV"; then
		say "the project moved from $STAMPED_ROOT: recreating $(rel "$JUPYTER_VENV"), whose scripts name the old place"
		create_venv "$JUPYTER_VENV" 1
	fi
	if [[ -z $UV && ${APP_INSTALLER:-uv} == uv ]]; then
		# No uv on this machine: pip installs uv into the server's venv in ~2 s, and uv
		# then installs JupyterLab in ~2 s where pip alone takes ~40 s.
		say "installing uv into $(rel "$JUPYTER_VENV") (no uv on PATH)..."
		if "$JUPYTER_PYTHON" -m pip install --quiet --disable-pip-version-check uv >&2; then
			UV=$JUPYTER_VENV/bin/uv
		else
			warn "could not install uv; falling back to pip (slower)"
		fi
	fi
	return 0
}

# Step four: the server's packages. A project dependency that failed before leaves the
# user with JupyterLab all the same.
install_server() {
	local -a reinstall=()
	((! SERVER_CURRENT)) || return 0
	jupyter_requirements
	remove_other_server_packages
	# Files deleted from an installed package: installers see it as installed.
	if [[ -f $BOOTSTRAP_STAMP && ! -x $JUPYTER_LAB ]] && ((! SERVER_SWITCHED)); then
		warn "$(rel "$JUPYTER_VENV") is damaged ($(basename "$JUPYTER_LAB") is missing); reinstalling"
		if [[ -n $UV ]]; then reinstall=(--reinstall); else reinstall=(--force-reinstall); fi
	fi
	remove_server_side_execution_if_off
	[[ -z ${PYTHONDONTWRITEBYTECODE:-} || -z $UV ]] ||
		say "PYTHONDONTWRITEBYTECODE is set: compiling bytecode now, so starts stay fast"
	write_excludes_file
	say "installing ${REQUIREMENTS[*]} into $(rel "$JUPYTER_VENV")..."
	pip_install --cache-first "$JUPYTER_PYTHON" ${reinstall[@]+"${reinstall[@]}"} "${REQUIREMENTS[@]}" || return 1
	remove_excluded_packages
}

# Sets SEED_PACKAGES to what `uv venv --seed` would put in the project's venv when it has
# no pip: pip, so `%pip install` works in notebooks, and below Python 3.12 setuptools
# and wheel. Installed with the project's dependencies, in their resolution: --seed
# resolves them on its own first (~0.6 s more). `python -m venv` seeds pip itself.
seed_packages() {
	local minor
	SEED_PACKAGES=()
	set -- "$VENV_DIR"/lib/python*/site-packages/pip
	[[ ! -e $1 ]] || return 0
	SEED_PACKAGES=(pip)
	set -- "$VENV_DIR"/lib/python3.*/site-packages
	minor=${1#"$VENV_DIR"/lib/python3.}
	minor=${minor%%/*}
	[[ $minor == *[!0-9]* || -z $minor ]] || ((minor >= 12)) || SEED_PACKAGES+=(setuptools wheel)
	return 0
}

# A pyproject.toml that declares nothing bootstrap reads may be one it cannot read: a
# merge conflict or a typo in [project] must fail, not pass as "no dependencies". The
# server's Python checks it (tomllib, Python 3.11+; older ones are not asked).
pyproject_parses() {
	local problem
	[[ -f $PROJECT_ROOT/pyproject.toml && " ${DEPENDENCY_FILES[*]-} " != *" pyproject.toml "* ]] || return 0
	problem=$("$JUPYTER_PYTHON" -I -c '
import sys
try:
    import tomllib
except ImportError:
    sys.exit(0)
try:
    with open(sys.argv[1], "rb") as f:
        tomllib.load(f)
except (OSError, ValueError) as error:
    print(error)
    sys.exit(1)' "$PROJECT_ROOT/pyproject.toml" 2>&1) && return 0
	warn "pyproject.toml is not valid TOML ($problem): its dependencies, if it declares any, are not" \
		"installed; fix it, then run: scripts/app.sh bootstrap"
	return 1
}

# Step two: the project's environment, by its owner. Sets DEPENDENCIES_STATE (ok,
# failed, none). The environment exists afterwards, whatever its dependencies did.
install_project() {
	DEPENDENCIES_STATE=none
	report_environment_yml
	migrate_previous_layout
	case $ENV_OWNER in
	uv) sync_with_uv ;;
	poetry | pdm) sync_with_tool "$ENV_OWNER" ;;
	*) install_into_own_venv ;;
	esac
}

# Without a lock: app.sh's own .venv, with what requirements.txt and pyproject.toml
# declare (and the project itself, editable, when it is a package).
install_into_own_venv() {
	if ! venv_is_healthy "$VENV_DIR"; then
		[[ ! -e $VENV_DIR ]] || warn "$(rel "$VENV_DIR") is broken (its python does not run); recreating it"
		create_venv "$VENV_DIR" "$(venv_is_ours && echo 1 || echo 0)"
		mark_venv_ours
	elif project_moved && ! venv_is_relocatable "$VENV_DIR" && venv_is_ours; then
		say "the project moved from $STAMPED_ROOT: recreating $(rel "$VENV_DIR"), whose scripts name the old place"
		create_venv "$VENV_DIR" 1
		mark_venv_ours
	fi
	seed_packages
	if ! pyproject_parses; then
		DEPENDENCIES_STATE=failed
		return 0
	fi
	if ((${#PROJECT_INSTALL_ARGS[@]} == 0)); then
		((${#SEED_PACKAGES[@]} == 0)) || pip_install --cache-first "$VENV_PYTHON" "${SEED_PACKAGES[@]}" || true
		return 0
	fi
	if [[ -z $UV ]] && [[ " ${PROJECT_INSTALL_ARGS[*]} " == *" --extra "* || " ${PROJECT_INSTALL_ARGS[*]} " == *"/pyproject.toml "* ]]; then
		warn "pip cannot install pyproject.toml's dependencies (or extras) without building the project; use APP_INSTALLER=uv"
	fi
	local what=${DEPENDENCY_FILES[*]-}
	((! PROJECT_PACKAGE)) || what+=", the project itself, editable"
	say "installing the project's dependencies ($what) into $(rel "$VENV_DIR")..."
	if pip_install "$VENV_PYTHON" "${PROJECT_INSTALL_ARGS[@]}" ${SEED_PACKAGES[@]+"${SEED_PACKAGES[@]}"}; then
		DEPENDENCIES_STATE=ok
	else
		DEPENDENCIES_STATE=failed
		# The kernel still needs a Python: the seed packages alone.
		((${#SEED_PACKAGES[@]} == 0)) || pip_install "$VENV_PYTHON" "${SEED_PACKAGES[@]}" >/dev/null 2>&1 || true
	fi
}

# Before anything is installed: a .venv whose Python does not run, which app.sh did not
# make (or a link), is never cleared; its package manager's tool recreates its own.
refuse_a_venv_app_sh_cannot_repair() {
	[[ $ENV_OWNER == app && (-e $VENV_DIR || -L $VENV_DIR) ]] || return 0
	! venv_is_healthy "$VENV_DIR" || return 0
	refuse_to_clear_what_is_not_ours "$VENV_DIR" "$(venv_is_ours && echo 1 || echo 0)"
}

# refuse_to_clear_what_is_not_ours DIR OURS: exits, saying what to do, when the venv DIR
# must not be cleared: a link (clearing would empty its target), or a directory with
# files that app.sh did not make (OURS 0). An empty directory is filled.
refuse_to_clear_what_is_not_ours() {
	local dir=$1 ours=$2
	if [[ ! -L $dir ]] && { ((ours)) || [[ -z $(ls -A "$dir" 2>/dev/null) ]]; }; then
		return 0
	fi
	die "$(rel "$dir") needs recreating: it is broken (its python does not run) or names the project's old place," \
		"but app.sh did not make it$([[ -L $dir ]] && printf ' (a link)') and never clears it; move it away" \
		"(mv $(rel "$dir") $(rel "$dir").old), then run: scripts/app.sh bootstrap"
}

mark_venv_ours() {
	printf '%s\n' "made by scripts/app.sh bootstrap: it may recreate this environment" 2>/dev/null >"$VENV_MARK" || true
}

# A uv project: `uv sync --frozen`, what `uv run` does, exactly the lock (with the extras
# and groups of APP_EXTRAS and APP_GROUPS), in .venv. A .venv app.sh did not make keeps
# what was installed into it by hand (--inexact).
sync_with_uv() {
	local name list existed=0
	local -a options=() args=(sync --frozen)
	[[ ! -d $VENV_DIR ]] || existed=1
	[[ -n $UV ]] || die "this project is uv's (uv.lock), and uv is missing; install uv (https://docs.astral.sh/uv/), then run: scripts/app.sh bootstrap"
	install_options
	venv_is_ours || ((! existed)) || args+=(--inexact)
	list=${APP_EXTRAS:-}
	for name in ${list//,/ }; do args+=(--extra "$name"); done
	list=${APP_GROUPS:-}
	for name in ${list//,/ }; do args+=(--group "$name"); done
	[[ -z ${APP_PYTHON:-} ]] || args+=(--python "$APP_PYTHON")
	say "syncing $(rel "$VENV_DIR") with uv.lock (uv ${args[*]})..."
	if (cd "$PROJECT_ROOT" && unset VIRTUAL_ENV && export UV_PROJECT_ENVIRONMENT=$VENV_DIR &&
		uv_offline_first "${args[@]}" ${options[@]+"${options[@]}"}) >&2; then
		DEPENDENCIES_STATE=ok
	else
		DEPENDENCIES_STATE=failed
	fi
	((existed)) || [[ ! -d $VENV_DIR ]] || mark_venv_ours
	[[ -d $VENV_DIR ]] || die "uv made no $(rel "$VENV_DIR") (see above); fix it, then run: scripts/app.sh bootstrap"
}

# A poetry or pdm project: the tool installs its lock into .venv (the one in the
# project, which both use when it exists). The tool on PATH, else run by uv
# (`uvx poetry`): either way exactly the locked versions.
sync_with_tool() {
	local tool=$1 name list existed=0
	local -a tool_command args
	[[ ! -d $VENV_DIR ]] || existed=1
	# The tool uses a .venv it finds in the project; without one, poetry would use (or
	# make) its own elsewhere, and the kernel would not run what it installs.
	((existed)) || create_venv "$VENV_DIR" 1
	if command -v "$tool" >/dev/null 2>&1; then
		tool_command=("$tool")
	elif [[ -n $UV ]]; then
		say "$tool is not on PATH: running it with uv (uv tool run $tool)"
		tool_command=("$UV" tool run --quiet "$tool")
	else
		die "this project is $tool's ($LOCK_FILE), and neither $tool nor uv is installed; install $tool, then run: scripts/app.sh bootstrap"
	fi
	list=${APP_EXTRAS:-}
	if [[ $tool == poetry ]]; then
		args=(install --no-interaction)
		[[ -z $list ]] || args+=(--extras "${list//,/ }")
		list=${APP_GROUPS:-}
		for name in ${list//,/ }; do args+=(--with "$name"); done
	else
		# Extras and dependency groups alike are pdm's groups.
		args=(sync --no-interaction)
		list+=,${APP_GROUPS:-}
		for name in ${list//,/ }; do args+=(--group "$name"); done
	fi
	say "installing $LOCK_FILE into $(rel "$VENV_DIR") ($tool ${args[*]})..."
	if (cd "$PROJECT_ROOT" && unset VIRTUAL_ENV && POETRY_VIRTUALENVS_IN_PROJECT=true POETRY_VIRTUALENVS_CREATE=true \
		PDM_VENV_IN_PROJECT=true PDM_USE_VENV=true "${tool_command[@]}" "${args[@]}" </dev/null) >&2; then
		DEPENDENCIES_STATE=ok
	else
		DEPENDENCIES_STATE=failed
	fi
	((existed)) || [[ ! -d $VENV_DIR ]] || mark_venv_ours
	venv_is_healthy "$VENV_DIR" ||
		die "$tool made no working $(rel "$VENV_DIR") (see above); fix it, then run: scripts/app.sh bootstrap"
}

# A .venv bootstrapped by an earlier release holds JupyterLab beside the project's
# packages: the packages only the server needed go (what the project, or anything
# installed by hand, needs stays), and .venv is the project's environment from now on.
migrate_previous_layout() {
	local unused
	[[ -f $LEGACY_STAMP ]] || return 0
	if venv_is_healthy "$VENV_DIR"; then
		unused=$(packages_only_needed_by "$VENV_PYTHON" -- "${JUPYTER_REQUIREMENTS[@]}" \
			"${SERVER_SIDE_EXECUTION_REQUIREMENTS[@]}" "${JUPYVERSE_REQUIREMENTS[@]}") || unused=""
		if [[ -n $unused ]]; then
			say "moving JupyterLab out of $(rel "$VENV_DIR") (now in $(rel "$JUPYTER_VENV")): removing the" \
				"$(wc -w <<<"$unused" | tr -d ' ') packages only the server needed..."
			# shellcheck disable=SC2086 # names, one a word
			pip_uninstall "$VENV_PYTHON" $unused
		fi
	fi
	rm -f "$VENV_DIR/.app-excludes.txt" "$VENV_DIR/share/jupyter/lab/settings/overrides.d/jupyter-template.json" \
		"$VENV_DIR/etc/jupyter/labconfig/page_config.json"
	mark_venv_ours
	rm -f "$LEGACY_STAMP"
}

# Sets LEGACY_SERVER_PID to the running server when an earlier release started it from
# .venv (the previous layout): bootstrap leaves .venv alone until restart stops it.
legacy_server_running() {
	LEGACY_SERVER_PID=""
	[[ -f $LEGACY_STAMP && (-f $PID_FILE || -f $LEGACY_PID_FILE) ]] || return 1
	scan_project
	[[ -n $TRACKED_PID ]] || return 1
	[[ $(args_of "$TRACKED_PID") == "$VENV_DIR/bin/"* ]] || return 1
	LEGACY_SERVER_PID=$TRACKED_PID
}

# Step three: ipykernel for the project's Python, in .jupyter_venv/kernel/pythonX.Y.
# Resolved with the versions the project's environment holds as constraints, so what
# both need is the project's version (which the kernel imports first anyway); when
# they cannot agree, ipykernel's own versions, with a warning. Built beside the old
# one and swapped in, so a kernel starting meanwhile finds a whole one; done again only
# when the project's Python or packages changed.
install_kernel_support() {
	local inputs new old freeze
	kernel_support_path
	freeze=$(project_freeze)
	inputs=$(kernel_support_inputs "$freeze" "$KERNEL_SUPPORT")
	if [[ -d $KERNEL_SUPPORT/ipykernel && $(cat "$KERNEL_SUPPORT/.app-inputs" 2>/dev/null) == "$inputs" ]]; then
		return 0
	fi
	new=$KERNEL_SUPPORT.new old=$KERNEL_SUPPORT.old
	rm -rf "$new" "$old"
	{ mkdir -p "$KERNEL_SUPPORT_DIR" && project_constraints "$freeze" >"$KERNEL_SUPPORT_DIR/constraints.txt"; } ||
		die "cannot write in $(rel "$KERNEL_SUPPORT_DIR"); is the disk full?"
	say "installing ${KERNEL_REQUIREMENTS[*]} for the project's Python into $(rel "$KERNEL_SUPPORT")..."
	if ! install_into "$new" -c "$KERNEL_SUPPORT_DIR/constraints.txt" "${KERNEL_REQUIREMENTS[@]}" 2>/dev/null; then
		rm -rf "$new"
		if install_into "$new" -c "$KERNEL_SUPPORT_DIR/constraints.txt" ipykernel 2>/dev/null; then
			say "the project's packages pin what ${KERNEL_REQUIREMENTS[*]} needs: using the ipykernel that fits them"
		else
			rm -rf "$new"
			install_into "$new" "${KERNEL_REQUIREMENTS[@]}" || return 1
			warn "no ipykernel fits the versions the project's environment holds; the kernel adds" \
				"${KERNEL_REQUIREMENTS[*]} after them, and may fail to start (see the server log)"
		fi
	fi
	kernel_support_inputs "$freeze" "$new" >"$new/.app-inputs"
	[[ ! -d $KERNEL_SUPPORT ]] || mv "$KERNEL_SUPPORT" "$old"
	mv "$new" "$KERNEL_SUPPORT" || return 1
	rm -rf "$old"
	# Other Pythons' (the project's changed): nothing runs them any more.
	for old in "$KERNEL_SUPPORT_DIR"/python*; do
		[[ $old == "$KERNEL_SUPPORT" || ! -d $old ]] || rm -rf "$old"
	done
	start_kernel_warmup
	return 0
}

# A kernel's first start imports ipykernel, IPython, zmq, tornado and the rest, and
# compiled them then (~1 s more; the server's copies are not the kernel's): imported
# once here, in the background while JupyterLab installs, as the kernel imports them
# (the project's packages first), so Python caches their bytecode. With
# PYTHONDONTWRITEBYTECODE, the install compiled them. Sets KERNEL_WARMUP_PID.
start_kernel_warmup() {
	KERNEL_WARMUP_PID=""
	[[ -z ${PYTHONDONTWRITEBYTECODE:-} ]] || return 0
	"$VENV_PYTHON" -I -c 'import site, sys; site.addsitedir(sys.argv[1]); import ipykernel.kernelapp, ipykernel.ipkernel' \
		"$KERNEL_SUPPORT" >/dev/null 2>&1 </dev/null &
	KERNEL_WARMUP_PID=$!
}

wait_for_kernel_warmup() {
	[[ -z ${KERNEL_WARMUP_PID:-} ]] || wait "$KERNEL_WARMUP_PID" 2>/dev/null || true
	KERNEL_WARMUP_PID=""
}

# kernel_support_inputs FREEZE DIR: prints what the kernel support directory DIR was
# built from (a checksum): the requirement, and the project's versions (FREEZE) of what
# DIR holds.
kernel_support_inputs() {
	printf '%s\n' "${KERNEL_REQUIREMENTS[@]}" "$(project_constraints "$1" "$2")" | cksum
}

# Prints what the project's environment holds, as `pip freeze` does.
project_freeze() {
	if [[ -n $UV ]]; then
		"$UV" pip freeze --python "$VENV_PYTHON" 2>/dev/null || true
	else
		"$VENV_PYTHON" -m pip freeze --disable-pip-version-check 2>/dev/null || true
	fi
}

# project_constraints FREEZE [DIR]: prints the distributions of FREEZE (project_freeze)
# as constraints (name==version), one a line; not the ones installed from a path or URL
# (the project itself). With DIR, only those of the distributions installed in DIR.
project_constraints() {
	local dir names="" name
	if [[ -n ${2:-} ]]; then
		for dir in "$2"/*.dist-info; do
			name=${dir##*/}
			names+=" ${name%%-*}"
		done
		names=" $(printf '%s' "$names" | tr 'A-Z_.' 'a-z--') "
	fi
	printf '%s\n' "$1" | awk -v names="$names" '/^[A-Za-z0-9][A-Za-z0-9._-]*==[^ @]+$/ {
		name = tolower(substr($0, 1, index($0, "==") - 1)); gsub(/[-_.]+/, "-", name)
		if (names == "" || index(names, " " name " ")) print }'
	return 0
}

# install_into DIR ARGS...: installs the requirements of ARGS into the directory DIR,
# for the project's Python.
install_into() {
	local dir=$1
	shift
	if [[ -z $UV ]] && ! "$VENV_PYTHON" -m pip --version >/dev/null 2>&1; then
		warn "neither uv nor pip can install for $(rel "$VENV_PYTHON"); install uv, or unset APP_INSTALLER"
		return 1
	fi
	pip_install --cache-first "$VENV_PYTHON" --target "$dir" "$@"
}

# A conda environment.yml is not read: this template installs with uv or pip.
report_environment_yml() {
	local file
	for file in environment.yml environment.yaml; do
		[[ -f $PROJECT_ROOT/$file ]] || continue
		say "found $file: not used (this template installs into .venv with uv or pip, not conda);" \
			"list its pip-installable packages in requirements.txt or pyproject.toml"
	done
	return 0
}

# Packages bootstrap never installs into the server's venv: rfc3987-syntax builds ~35
# Lark parsers when JupyterLab imports jsonschema's format checkers (half its start-up
# time), for the 'iri' formats no Jupyter schema uses (jupyter_server#1559).
# APP_EXCLUDE='' keeps it.
write_excludes_file() {
	[[ -n $EXCLUDED_PACKAGES ]] || return 0
	# A list of names, split on purpose (load_settings allows no glob characters).
	# shellcheck disable=SC2086
	printf '%s\n' $EXCLUDED_PACKAGES >"$EXCLUDES_FILE" 2>/dev/null || die "cannot write $(rel "$EXCLUDES_FILE"); is the disk full?"
}

# A venv bootstrapped before the exclusion (or by pip, which has none) loses them here.
remove_excluded_packages() {
	excluded_packages_present
	[[ -n $EXCLUDED_PRESENT ]] || return 0
	say "removing $EXCLUDED_PRESENT (it only slows JupyterLab's start)..."
	# Names only (load_settings checked them): split on purpose.
	# shellcheck disable=SC2086
	pip_uninstall "$JUPYTER_PYTHON" $EXCLUDED_PRESENT
}

# Sets EXCLUDED_PRESENT to the excluded packages the server's venv holds (space-separated).
excluded_packages_present() {
	local package
	EXCLUDED_PRESENT=""
	for package in $EXCLUDED_PACKAGES; do
		set -- "$JUPYTER_VENV"/lib/python*/site-packages/"${package//-/_}"-*.dist-info
		[[ ! -e $1 ]] || EXCLUDED_PRESENT+=${EXCLUDED_PRESENT:+ }$package
	done
	return 0
}

# pip_uninstall PYTHON NAMES...: uninstalls the packages from PYTHON's environment, with
# uv (or pip).
pip_uninstall() {
	local python=$1
	shift
	if [[ -n $UV ]]; then
		"$UV" pip uninstall --quiet --python "$python" "$@" >&2
	else
		"$python" -m pip uninstall --quiet --yes "$@" >&2
	fi
}

# Server-side execution turned off (copier update): its server extensions must go,
# or they keep loading.
remove_server_side_execution_if_off() {
	[[ $SERVER_SIDE_EXECUTION != true ]] || return 0
	[[ -f $JUPYTER_VENV/etc/jupyter/jupyter_server_config.d/jupyter_server_nbmodel.json ]] || return 0
	say "server-side execution is off: removing ${SERVER_SIDE_EXECUTION_PACKAGES[*]}..."
	pip_uninstall "$JUPYTER_PYTHON" "${SERVER_SIDE_EXECUTION_PACKAGES[@]}"
}

# The server switched (copier update -d server=...): the packages only the other
# server needed go; what anything else in the venv still needs stays. Before the new
# server's install, since the two servers' packages write the same files
# (jupyterlab-js and jupyterlab both install share/jupyter/lab): what the new server
# shares with the old comes back with it. Sets SERVER_SWITCHED=1 when the other server
# was installed.
remove_other_server_packages() {
	local -a other
	local unused
	SERVER_SWITCHED=0
	if [[ $SERVER == jupyverse ]]; then
		other=("${JUPYTER_REQUIREMENTS[@]}" "${SERVER_SIDE_EXECUTION_REQUIREMENTS[@]}")
	else
		other=("${JUPYVERSE_REQUIREMENTS[@]}")
	fi
	venv_has_other_server || return 0
	SERVER_SWITCHED=1
	unused=$(packages_only_needed_by "$JUPYTER_PYTHON" "${REQUIREMENTS[@]}" -- "${other[@]}") || return 0
	[[ -n $unused ]] || return 0
	say "the server is now $SERVER: removing the $(wc -w <<<"$unused" | tr -d ' ') packages only the other server needed..."
	# shellcheck disable=SC2086 # names, one a word
	pip_uninstall "$JUPYTER_PYTHON" $unused
}

# The server's venv holds the server this project had before a copier update switched it.
venv_has_other_server() {
	local marker=jupyverse
	[[ $SERVER != jupyverse ]] || marker=jupyter_server
	set -- "$JUPYTER_VENV"/lib/python*/site-packages/"$marker"-*.dist-info
	[[ -e $1 ]]
}

# Sets STATUS_VENV, what the server's venv is: missing (start bootstraps); previous, the
# layout of an earlier release (JupyterLab in .venv; start and bootstrap move it, restart
# while it runs); broken, app.sh's without Python or the server; switched, made for the
# other server before a copier update switched it (bootstrap installs the new one); ok.
# ENV_STATE, the project's .venv: missing, broken (its Python does not run), ok.
classify_venv() {
	if [[ -f $LEGACY_STAMP && ! -f $BOOTSTRAP_STAMP ]]; then
		STATUS_VENV=previous
	elif [[ ! -d $JUPYTER_VENV || ! -f $BOOTSTRAP_STAMP ]]; then
		STATUS_VENV=missing
	elif [[ ! -x $JUPYTER_PYTHON ]]; then
		STATUS_VENV=broken
	elif [[ -x $JUPYTER_LAB ]]; then
		STATUS_VENV=ok
	elif venv_has_other_server; then
		STATUS_VENV=switched
	else
		STATUS_VENV=broken
	fi
	if [[ ! -d $VENV_DIR ]]; then
		ENV_STATE=missing
	elif [[ -x $VENV_PYTHON ]]; then
		ENV_STATE=ok
	else
		ENV_STATE=broken
	fi
}

# The server this project does not use: jupyter-server or jupyverse.
other_server() { if [[ $SERVER == jupyverse ]]; then printf jupyter-server; else printf jupyverse; fi; }

# packages_only_needed_by PYTHON WANTED... -- OTHER...: prints the distributions
# installed in PYTHON's environment that only the OTHER requirements need (with their
# dependencies, as installed), none that WANTED or any other installed distribution needs.
packages_only_needed_by() {
	local python=$1
	shift
	"$python" -I "$PROJECT_ROOT/scripts/venv_packages.py" "$@"
}

# Spec section 2: the kernel lives in the venv, never in the user's kernel directory:
# .venv/share/jupyter/kernels/NAME (the server finds it through JUPYTER_PATH). Writes
# what `python -m ipykernel install --sys-prefix --name ... --display-name ... --env ...`
# writes (ipykernel's logos and a kernel.json, indent 1), but the command is the
# project's Python running scripts/ipykernel_launcher.py, which adds ipykernel from
# .jupyter_venv/kernel (KERNEL_SUPPORT); the tool that owns the environment is named,
# so that %pip install can say how to add a package for good. A test compares it with
# ipykernel's own.
register_kernel() {
	local owner=()
	[[ $ENV_OWNER == app ]] || owner=("--owner=$ENV_OWNER")
	say "registering kernel '$PROJECT_NAME' ($DISPLAY_NAME) in $(rel "$VENV_DIR")..."
	"$VENV_PYTHON" -I -S -c '
import json, os, shutil, sys
destination, resources, display_name, python, launcher, owner = sys.argv[1:7]
env = sys.argv[7:]
argv = [python, launcher] + ([owner] if owner else []) + ["-f", "{connection_file}"]
if sys.implementation.name == "cpython":  # debugpy: no frozen modules
    argv.insert(1, "-Xfrozen_modules=off")
spec = {
    "argv": argv,
    "display_name": display_name,
    "language": "python",
    "metadata": {"debugger": True, "supported_encryption": ["curve"]},
    "kernel_protocol_version": "5.5",
    "env": dict(zip(env[::2], env[1::2])),
}
if os.path.isdir(destination):
    shutil.rmtree(destination)
shutil.copytree(resources, destination)
with open(os.path.join(destination, "kernel.json"), "w") as file:
    json.dump(spec, file, indent=1)' "${KERNEL_SPEC%/*}" "$KERNEL_SUPPORT/ipykernel/resources" "$DISPLAY_NAME" \
		"$VENV_PYTHON" "$KERNEL_LAUNCHER" "${owner[0]-}" \
		IPYTHONDIR "$PROJECT_ROOT/.ipython" MPLCONFIGDIR "$PROJECT_ROOT/.cache/matplotlib" || return 1
	# Jupyter tools run from .jupyter_venv (jupyter execute, nbconvert, console) find it
	# without JUPYTER_PATH too: a relative link, which moves with the project.
	local link=$JUPYTER_VENV/share/jupyter/kernels/$PROJECT_NAME
	{ mkdir -p "${link%/*}" && rm -rf "$link" && ln -s "../../../../.venv/share/jupyter/kernels/$PROJECT_NAME" "$link"; } ||
		warn "cannot link the kernel into $(rel "${link%/*}")"
	return 0
}

# The project's JupyterLab defaults, kept in the venv; bootstrap and start apply them
# again, since installing packages may undo them:
# - one kernel, the project's: ipykernel's own spec comes back with every install of
#   ipykernel, and other frontends (VS Code, jupyter console, nbclient) start it without
#   this project's IPYTHONDIR and MPLCONFIGDIR (launch_server also keeps jupyter_client
#   from adding it back from the ipykernel package);
# - no phoning home unless asked: JupyterLab asks every new browser whether to fetch
#   jupyter.org's news (and, once allowed, checks PyPI for updates). Written once: an
#   edited file is the user's.
# - no rebuild check at page load: every JupyterLab tab asks /lab/api/build, which
#   runs `node yarn.js config --json` (~1 s of CPU) whenever node is on PATH, to tell
#   whether a source extension needs `jupyter lab build`; prebuilt extensions (pip) never
#   do. A user of source extensions runs `jupyter lab build` after installing them, as
#   before. Written once, only when absent: labextension disable --sys-prefix merges in.
apply_venv_defaults() {
	[[ -d $JUPYTER_VENV ]] || return 0
	# JupyterLab needs ipykernel in .jupyter_venv, whose spec would be a second kernel.
	# In a .venv its package manager owns, ipykernel's spec is a file of the project's own
	# ipykernel, left alone (doctor says so).
	if [[ $PROJECT_NAME != python3 ]]; then
		local native
		for native in "$SERVER_NATIVE_KERNEL_DIR" "$NATIVE_KERNEL_DIR"; do
			[[ -d $native ]] || continue
			[[ $native == "$SERVER_NATIVE_KERNEL_DIR" ]] || venv_is_ours || continue
			rm -rf "$native" || warn "cannot remove $(rel "$native")"
		done
	fi
	if [[ ! -e $LAB_PAGE_CONFIG_FILE ]]; then
		{ mkdir -p "${LAB_PAGE_CONFIG_FILE%/*}" && printf '%s\n' '{"buildCheck": false}' >"$LAB_PAGE_CONFIG_FILE"; } 2>/dev/null ||
			warn "cannot write $(rel "$LAB_PAGE_CONFIG_FILE")"
	fi
	[[ -f $LAB_DEFAULTS_FILE ]] && return 0
	{ mkdir -p "${LAB_DEFAULTS_FILE%/*}" &&
		printf '%s\n' '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
			>"$LAB_DEFAULTS_FILE"; } 2>/dev/null || warn "cannot write $(rel "$LAB_DEFAULTS_FILE")"
	return 0
}

warn_user_kernel_collision() {
	local dir
	for dir in "$HOME/.local/share/jupyter/kernels" "$HOME/Library/Jupyter/kernels"; do
		if [[ -d $dir/$PROJECT_NAME ]]; then
			warn "a kernel named '$PROJECT_NAME' is also in your user kernel directory ($dir/$PROJECT_NAME)" \
				"and may shadow this project's in other tools; remove it with: jupyter kernelspec remove $PROJECT_NAME"
		fi
	done
}

cmd_bootstrap() {
	local force=0
	while (($#)); do
		case $1 in
		--force) force=1 ;;
		*) usage_error "bootstrap: unknown option '$1'" ;;
		esac
		shift
	done
	acquire_lock
	register_project
	run_bootstrap "$force"
	[[ $DEPENDENCIES_STATE != failed ]] || return "$EXIT_FAILURE"
}

# Bootstraps; returns 0 also when only the project's dependencies failed
# (DEPENDENCIES_STATE=failed): JupyterLab is there, and the caller decides.
run_bootstrap() {
	local force=$1 started=$SECONDS fingerprint
	DEPENDENCIES_STATE=current
	create_isolation_dirs
	dependency_files
	if ((! force)) && bootstrap_is_current; then
		apply_venv_defaults
		say "already bootstrapped; nothing changed (use --force to reinstall)"
		return 0
	fi
	if legacy_server_running; then
		warn "the running server (PID $LEGACY_SERVER_PID) runs from $(rel "$VENV_DIR"), as an earlier release" \
			"laid it out; nothing changed. Move it to $(rel "$JUPYTER_VENV") with: scripts/app.sh restart"
		return 0
	fi
	refuse_a_venv_app_sh_cannot_repair
	find_uv
	# Once: whether the server's side can be left as it is (the steps below change it).
	SERVER_CURRENT=0
	((force)) || ! server_is_current || SERVER_CURRENT=1
	ensure_server_venv
	install_project
	install_kernel_support || die "installing ipykernel for the project's Python failed (see above); fix it and run: scripts/app.sh bootstrap"
	install_server || die "installing JupyterLab failed (see above); fix it and run: scripts/app.sh bootstrap"
	wait_for_kernel_warmup
	register_kernel || die "registering the kernel failed (see above)"
	apply_venv_defaults
	fingerprint=$(bootstrap_fingerprint)
	# The project root tells a later command that the project moved; the dependencies'
	# state, that they still need a bootstrap.
	printf '%s\n%s\n%s\n%s\n' "$fingerprint" "root=$PROJECT_ROOT" "dependencies=$DEPENDENCIES_STATE" \
		"server=$(server_fingerprint)" 2>/dev/null >"$BOOTSTRAP_STAMP" ||
		die "cannot write $(rel "$BOOTSTRAP_STAMP"); is the disk full?"
	warn_user_kernel_collision
	report_what_still_runs_the_old_venv
	if [[ $DEPENDENCIES_STATE == failed ]]; then
		warn "the project's dependencies failed to install (the installer said why, above);" \
			"JupyterLab works without them. Fix ${DEPENDENCY_FILES[*]-them}, then run: scripts/app.sh bootstrap"
		return 0
	fi
	say "bootstrapped in $((SECONDS - started))s: kernel '$PROJECT_NAME' ready, running $(rel "$VENV_DIR") ($(env_owner_words))"
	hint_missing_imports
}

# Who keeps the project's environment, in words.
env_owner_words() {
	case $ENV_OWNER in
	app) printf "app.sh's: %s" "${DEPENDENCY_FILES[*]:-no dependencies declared}" ;;
	*) printf "%s's, exactly %s" "$ENV_OWNER" "$LOCK_FILE" ;;
	esac
}

# Prints, one a line, what the project's notebooks import that is neither in Python's
# standard library, nor installed in the venv, nor a module beside the notebook: the
# distribution to install, by its usual name. Parses the notebooks (json, ast), never
# runs them.
missing_imports() {
	# The project's own modules are not missing: a module or package at its top level,
	# under src/ or beside any of its notebooks, and one a notebook writes with %%file or
	# %%writefile. An import name that is not its distribution's (mpl_toolkits is
	# matplotlib's) is named by its distribution.
	local notebooks
	[[ -x $VENV_PYTHON ]] || return 0
	kernel_support_path
	notebooks=$(project_notebooks)
	[[ -n $notebooks ]] || return 0 # no notebook: no Python to start
	printf '%s\n' "$notebooks" | "$VENV_PYTHON" -I -c '
import ast, importlib.util, json, os, posixpath, shlex, sys
# Import names that are not the name of the distribution that provides them.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow", "yaml": "pyyaml",
                 "bs4": "beautifulsoup4", "skimage": "scikit-image", "dateutil": "python-dateutil",
                 "Bio": "biopython", "attr": "attrs", "google": "google-api-python-client",
                 "mpl_toolkits": "matplotlib", "IPython": "ipython", "jwt": "PyJWT", "dotenv": "python-dotenv",
                 "serial": "pyserial", "usb": "pyusb", "OpenSSL": "pyOpenSSL", "Crypto": "pycryptodome",
                 "nacl": "PyNaCl", "docx": "python-docx", "pptx": "python-pptx", "magic": "python-magic",
                 "fitz": "PyMuPDF", "osgeo": "GDAL", "shapefile": "pyshp", "umap": "umap-learn",
                 "zmq": "pyzmq", "git": "GitPython", "dns": "dnspython", "MySQLdb": "mysqlclient",
                 "gi": "PyGObject", "wx": "wxPython", "websocket": "websocket-client", "socks": "PySocks",
                 "slugify": "python-slugify", "Levenshtein": "python-Levenshtein", "ruamel": "ruamel.yaml",
                 "pkg_resources": "setuptools"}
root, cells = sys.argv[1], {}
sys.path.extend(sys.argv[2:])  # what the kernel adds: ipykernel, IPython
for path in filter(None, sys.stdin.read().splitlines()):
    try:
        with open(path, encoding="utf-8") as file:
            found = json.load(file).get("cells", [])
    except (OSError, ValueError, AttributeError):
        continue
    sources = []
    for cell in found:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else str(source))
    cells[path] = sources
# Modules of the project itself: at its top level, under src/, beside any notebook.
local = set()
for folder in {root, os.path.join(root, "src"), *map(os.path.dirname, cells)}:
    try:
        names = os.listdir(folder)
    except OSError:
        continue
    for name in names:
        if name.endswith((".py", ".so", ".pyd")) or os.path.isdir(os.path.join(folder, name)):
            local.add(name.partition(".")[0])
# Modules the notebooks write themselves: %%file NAME.py or %%writefile [-a] NAME.py.
for source in (s for sources in cells.values() for s in sources):
    first = source.lstrip().partition("\n")[0].split(None, 1)
    if first and first[0] in ("%%file", "%%writefile") and len(first) == 2:
        try:
            target = next((arg for arg in shlex.split(first[1]) if not arg.startswith("-")), "")
        except ValueError:
            continue
        if target.endswith(".py"):
            parts = [part for part in posixpath.normpath(target).split("/") if part not in ("", ".", "..")]
            local.update({parts[-1][: -len(".py")], parts[0].partition(".")[0]} if parts else ())
seen, missing = set(), []
for source in (s for sources in cells.values() for s in sources):
    # IPython magics and shell escapes are not Python.
    lines = ["" if line.lstrip().startswith(("%", "!", "?")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        continue
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for top in (name.partition(".")[0] for name in names):
            if top in seen:
                continue
            seen.add(top)
            if top in sys.stdlib_module_names or top in local or importlib.util.find_spec(top) is not None:
                continue
            missing.append(DISTRIBUTIONS.get(top, top))
print("\n".join(sorted(set(missing), key=str.lower)))' "$PROJECT_ROOT" "$KERNEL_SUPPORT" 2>/dev/null || true
}

hint_missing_imports() {
	local missing
	missing=$(missing_imports)
	[[ -n $missing ]] || return 0
	warn "the notebooks import what is not installed: ${missing//$'\n'/, }; $(missing_imports_remedy ok)"
}

# missing_imports_remedy STATE: how to install what the notebooks import, given the state
# of the project's dependencies at the last bootstrap (ok or failed).
missing_imports_remedy() {
	if [[ $ENV_OWNER != app ]]; then
		printf '%s' "add them with: $ENV_OWNER add NAME (the kernel has them after a restart)"
	elif [[ $1 == failed ]]; then
		printf '%s' "the project's dependencies failed to install at the last bootstrap; fix" \
			" ${DEPENDENCY_FILES[*]-them}, then run: scripts/app.sh bootstrap (it shows the installer's reason)"
	elif grep -q '^\[project\.optional-dependencies\]' "$PROJECT_ROOT/pyproject.toml" 2>/dev/null; then
		printf '%s' "add them to pyproject.toml's dependencies (optional ones: set APP_EXTRAS in" \
			" scripts/app.local.sh), then run: scripts/app.sh bootstrap"
	else
		printf '%s' "add them to requirements.txt (or pyproject.toml), then run: scripts/app.sh bootstrap"
	fi
}

# After a bootstrap, a running server and its kernels still run with the packages they
# started with (and the server it was, after a switch): say so, and how to renew them.
report_what_still_runs_the_old_venv() {
	local i count=0
	# No PID file, no server of ours: no process table to read.
	[[ -f $PID_FILE || -f $LEGACY_PID_FILE ]] || return 0
	scan_project
	[[ -n $TRACKED_PID ]] || return 0
	find_running_old_server
	if [[ -n $RUNNING_OLD_SERVER ]]; then
		warn "the running server (PID $TRACKED_PID) is still $RUNNING_OLD_SERVER; switch it to $SERVER with: scripts/app.sh restart"
		return 0
	fi
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		[[ ${PS_PPIDS[i]} == "$TRACKED_PID" ]] && is_project_kernel "${PS_ARGS[i]}" && count=$((count + 1))
	done
	((count > 0)) || return 0
	warn "$count running kernel(s) still have the packages they started with: restart them" \
		"(JupyterLab: Kernel > Restart Kernel), or everything with: scripts/app.sh restart"
}
