package main

import (
	"fmt"
	"slices"
	"strings"
)

const completionUsage = `
Usage: difflore completion bash|zsh|fish

Prints a shell completion script for difflore's commands and flags.

Examples:
  source <(difflore completion bash)          # in ~/.bashrc
  difflore completion zsh > "${fpath[1]}/_difflore"
  difflore completion fish > ~/.config/fish/completions/difflore.fish
`

// commandWords is what completion offers after each command's name, from
// the table of commands.
func commandWords() map[string][]string {
	words := map[string][]string{}
	for _, c := range commands() {
		words[c.name] = c.words
	}
	return words
}

// commandNames are the names of the commands, sorted.
func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	slices.Sort(names)
	return names
}

func cmdCompletion(cfg config, args []string) error {
	if len(args) == 1 && usageAsked(cfg, args, completionUsage, false) {
		return nil
	}
	if len(args) != 1 {
		return &exitError{code: 2, err: fmt.Errorf("usage: difflore completion bash|zsh|fish")}
	}
	names, commandFlags := commandNames(), commandWords()
	var b strings.Builder
	switch args[0] {
	case "bash":
		b.WriteString("# bash completion for difflore\n_difflore() {\n")
		b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]}\n")
		b.WriteString("  if [ \"$COMP_CWORD\" -eq 1 ]; then\n")
		fmt.Fprintf(&b, "    COMPREPLY=($(compgen -W %q -- \"$cur\")); return\n  fi\n", strings.Join(names, " "))
		b.WriteString("  case ${COMP_WORDS[1]} in\n")
		for _, c := range names {
			fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c, strings.Join(commandFlags[c], " "))
		}
		b.WriteString("  esac\n}\ncomplete -F _difflore difflore\n")
	case "zsh":
		b.WriteString("#compdef difflore\n_difflore() {\n  if (( CURRENT == 2 )); then\n")
		fmt.Fprintf(&b, "    compadd -- %s\n    return\n  fi\n  case ${words[2]} in\n", strings.Join(names, " "))
		for _, c := range names {
			if len(commandFlags[c]) > 0 {
				fmt.Fprintf(&b, "    %s) compadd -- %s ;;\n", c, strings.Join(commandFlags[c], " "))
			}
		}
		b.WriteString("  esac\n}\ncompdef _difflore difflore\n")
	case "fish":
		b.WriteString("# fish completion for difflore\ncomplete -c difflore -f\n")
		fmt.Fprintf(&b, "complete -c difflore -n __fish_use_subcommand -a %q\n", strings.Join(names, " "))
		for _, c := range names {
			for _, f := range commandFlags[c] {
				switch {
				case strings.HasPrefix(f, "--"):
					fmt.Fprintf(&b, "complete -c difflore -n '__fish_seen_subcommand_from %s' -l %s\n", c, f[2:])
				case strings.HasPrefix(f, "-"):
					fmt.Fprintf(&b, "complete -c difflore -n '__fish_seen_subcommand_from %s' -s %s\n", c, f[1:])
				default:
					fmt.Fprintf(&b, "complete -c difflore -n '__fish_seen_subcommand_from %s' -a %s\n", c, f)
				}
			}
		}
	default:
		return &exitError{code: 2, err: fmt.Errorf("unknown shell %q", args[0]), hint: "use bash, zsh or fish"}
	}
	fmt.Fprint(cfg.stdout, b.String())
	return nil
}
