using System.CommandLine;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway completion bash|zsh|fish|pwsh</c>: a script that completes commands, options and their
/// values. Each script asks keyway itself through System.CommandLine's suggest directive
/// (<c>keyway "[suggest:POSITION]" "LINE"</c>), so completion always matches the installed version.
/// </summary>
internal static class CompletionCommand
{
    public static Command Create(CliIo io)
    {
        var shell = new Argument<string>("shell") { Description = "bash, zsh, fish or pwsh." };
        shell.AcceptOnlyFromAmong("bash", "zsh", "fish", "pwsh");
        var command = new Command("completion", "Print a shell completion script.\n" +
            "bash: source <(keyway completion bash)   zsh: source <(keyway completion zsh)\n" +
            "fish: keyway completion fish | source    pwsh: keyway completion pwsh | Out-String | Invoke-Expression") { shell };
        command.SetAction(parse =>
        {
            io.Out.Write(Script(parse.GetValue(shell)!));
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static string Script(string shell) => shell switch
    {
        "bash" => """
            # keyway completion for bash: source <(keyway completion bash)
            _keyway_complete() {
                local line="${COMP_LINE:0:COMP_POINT}"
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(keyway "[suggest:${#line}]" "$line" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
            }
            complete -o default -F _keyway_complete keyway

            """,
        "zsh" => """
            # keyway completion for zsh: source <(keyway completion zsh)
            _keyway() {
                local line="${(j: :)words[1,CURRENT]}"
                local -a items
                items=("${(@f)$(keyway "[suggest:${#line}]" "$line" 2>/dev/null)}")
                compadd -a items
            }
            compdef _keyway keyway

            """,
        "fish" => """
            # keyway completion for fish: keyway completion fish | source
            function __keyway_complete
                set -l line (commandline -cp)
                keyway "[suggest:"(string length -- "$line")"]" "$line" 2>/dev/null
            end
            complete -c keyway -f -a '(__keyway_complete)'

            """,
        _ => """
            # keyway completion for PowerShell: keyway completion pwsh | Out-String | Invoke-Expression
            Register-ArgumentCompleter -Native -CommandName keyway -ScriptBlock {
                param($wordToComplete, $commandAst, $cursorPosition)
                $line = $commandAst.ToString()
                $position = $cursorPosition - $commandAst.Extent.StartOffset
                if ($position -gt $line.Length) { $line = $line.PadRight($position) }
                keyway "[suggest:$position]" "$line" 2>$null | ForEach-Object {
                    [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
                }
            }

            """,
    };
}
