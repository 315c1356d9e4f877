package main

import (
	"fmt"
	"slices"
	"strings"
)

const completionUsage = `
Usage: difflore completion bash|zsh|fish|powershell

Prints a shell completion script for difflore's commands and flags.

Examples:
  source <(difflore completion bash)          # in ~/.bashrc
  difflore completion zsh > "${fpath[1]}/_difflore"
  difflore completion fish > ~/.config/fish/completions/difflore.fish
  difflore completion powershell | Out-String | Invoke-Expression   # in $PROFILE
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
	fl := newFlagSet(cfg, "completion", completionUsage)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("completion takes one shell, got %d", fl.NArg()), hint: "use bash, zsh, fish or powershell"}
	}
	names, commandFlags := commandNames(), commandWords()
	var b strings.Builder
	switch fl.Arg(0) {
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
	case "powershell":
		writePowerShellCompletion(&b, names, commandFlags)
	default:
		return &exitError{code: 2, err: fmt.Errorf("unknown shell %q", fl.Arg(0)), hint: "use bash, zsh, fish or powershell"}
	}
	fmt.Fprint(cfg.stdout, b.String())
	return nil
}

// writePowerShellCompletion writes a native argument completer for
// difflore: the commands in second place, then the words of the command
// named there.
func writePowerShellCompletion(b *strings.Builder, names []string, commandFlags map[string][]string) {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	b.WriteString("# PowerShell completion for difflore\n")
	b.WriteString("Register-ArgumentCompleter -Native -CommandName difflore -ScriptBlock {\n")
	b.WriteString("    param($wordToComplete, $commandAst, $cursorPosition)\n")
	b.WriteString("    $commands = [ordered]@{\n")
	for _, c := range names {
		q := make([]string, len(commandFlags[c]))
		for i, w := range commandFlags[c] {
			q[i] = quote(w)
		}
		fmt.Fprintf(b, "        %s = @(%s)\n", quote(c), strings.Join(q, ", "))
	}
	b.WriteString(`    }
    $typed = @($commandAst.CommandElements | ForEach-Object { $_.ToString() })
    $done = $typed.Count
    if ($wordToComplete -ne '') { $done-- }
    if ($done -le 1) {
        $candidates = $commands.Keys
    } else {
        $candidates = $commands[$typed[1]]
    }
    $candidates | Where-Object { $_ -like "$wordToComplete*" } | ForEach-Object {
        [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
    }
}
`)
}
