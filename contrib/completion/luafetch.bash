# bash completion for luafetch(1): commands, `get` options, installed script names for `run`, and
# a script's own options (read from its --help). Installed as
# PREFIX/share/bash-completion/completions/luafetch.

_luafetch_scripts() {
  # the scripts installed beside the program: PREFIX/share/luafetch/scripts/NAME.lua
  local bin dir f
  bin=$(command -v luafetch 2>/dev/null) || return
  dir=$(dirname "$bin")/../share/luafetch/scripts
  for f in "$dir"/*.lua; do
    [ -e "$f" ] || continue
    f=${f##*/}
    case $f in *.example.lua) continue ;; esac
    printf '%s\n' "${f%.lua}"
  done
}

_luafetch() {
  local cur prev cword
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD - 1]}
  cword=$COMP_CWORD
  COMPREPLY=()

  if [ "$cword" -eq 1 ]; then
    COMPREPLY=($(compgen -W "run get test -e --version --help" -- "$cur"))
    return
  fi

  case ${COMP_WORDS[1]} in
  get)
    case $prev in
    -o | --output | --cacert)
      COMPREPLY=($(compgen -f -- "$cur"))
      return
      ;;
    -X | --request)
      COMPREPLY=($(compgen -W "GET HEAD POST PUT PATCH DELETE OPTIONS" -- "$cur"))
      return
      ;;
    -H | --header | -d | --data | --data-binary | --json | -F | --form | -A | --user-agent | \
      -x | --proxy | --timeout | -m | --max-time | --max-redirs | -w | --write-out | \
      -c | --concurrency | --retries | --backoff | --threshold)
      return
      ;;
    esac
    case $cur in
    -*)
      COMPREPLY=($(compgen -W "-h --help -X --request -H --header -d --data --data-binary
        --json -F --form -A --user-agent -I --head -k --insecure --cacert -x --proxy --timeout
        -m --max-time --max-redirs -L --location -o --output -i --include -w --write-out
        --json-lines -s --silent -v --verbose -c --concurrency --retries --backoff -f --fail
        --no-fail --threshold" -- "$cur"))
      ;;
    @*)
      # @FILE: a file of URLs
      COMPREPLY=($(compgen -f -- "${cur#@}"))
      COMPREPLY=("${COMPREPLY[@]/#/@}")
      ;;
    esac
    ;;
  run)
    if [ "$cword" -eq 2 ]; then
      COMPREPLY=($(compgen -W "$(_luafetch_scripts)" -- "$cur") $(compgen -f -X '!*.lua' -- "$cur") \
        $(compgen -d -- "$cur"))
    elif [[ $cur == -* ]]; then
      # the script's options, from its own --help (every bundled script has one)
      local opts
      opts=$(luafetch run "${COMP_WORDS[2]}" --help 2>/dev/null </dev/null |
        grep -oE -- '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' | sort -u)
      COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
      COMPREPLY=($(compgen -f -- "$cur"))
    fi
    ;;
  test)
    COMPREPLY=($(compgen -f -- "$cur"))
    ;;
  esac
}

complete -o filenames -F _luafetch luafetch
