# bash completion for uwsgi-docker. Debian: /usr/share/bash-completion/completions/uwsgi-docker
# The word lists are held to the parser by a test in uwsgi-docker-cli/src/args.rs.
_uwsgi_docker() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD - 1]}"
    if ((COMP_CWORD == 1)); then
        mapfile -t COMPREPLY < <(compgen -W "run check ps gc help --help --version" -- "$cur")
        return
    fi
    local options files=0
    case "${COMP_WORDS[1]}" in
        run) options="--help"; files=1 ;;
        check) options="--policy --help"; files=1 ;;
        ps) options="--help" ;;
        gc) options="--dry-run --help" ;;
        help)
            ((COMP_CWORD == 2)) && mapfile -t COMPREPLY < <(compgen -W "run check ps gc" -- "$cur")
            return
            ;;
        *) return ;;
    esac
    if [[ "$cur" == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
    elif ((files)) || [[ "$prev" == --policy ]]; then
        # Vassal and policy files are .ini files.
        if declare -F _filedir >/dev/null; then
            _filedir ini
        else
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
    fi
}
complete -F _uwsgi_docker uwsgi-docker
