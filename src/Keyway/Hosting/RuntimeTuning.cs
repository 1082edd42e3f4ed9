using System.Runtime.InteropServices;
using System.Text;

namespace Keyway.Hosting;

/// <summary>
/// Runtime settings the .NET runtime reads only from the environment, never from
/// <c>keyway.runtimeconfig.json</c>: before <c>keyway serve</c> does anything else, on Linux, Keyway
/// starts itself again in place with them set (<c>execve</c>: the same process id, name, arguments,
/// working directory and open standard streams, so systemd, containers and supervisors see nothing
/// change, and the .NET diagnostics tools attach as usual).
/// </summary>
/// <remarks>
/// <para>
/// The one setting today is the garbage collector's generation-0 budget, <c>DOTNET_GCgen0size</c>: how
/// much is allocated between two collections. .NET sizes it from the CPU's last-level cache, 16 MB
/// and more on a server CPU with a 32 MB L3; every byte of it becomes resident under load. Keyway's
/// requests leave almost nothing alive behind them, so a 4 MB budget collects a little more often,
/// each collection as cheap, and holds peak memory under the proxy load about 13 MB lower
/// (docs/benchmarks.md, "Memory and the audit insert").
/// </para>
/// <para>
/// An operator who sets <c>DOTNET_GCgen0size</c> keeps their value (<c>0</c> means .NET's own default).
/// Elsewhere than Linux, or if the restart cannot happen, Keyway runs on with .NET's defaults.
/// </para>
/// </remarks>
internal static partial class RuntimeTuning
{
    /// <summary>The variable .NET reads the generation-0 budget from (hexadecimal bytes).</summary>
    public const string Gen0SizeVariable = "DOTNET_GCgen0size";

    /// <summary>4 MiB, in the hexadecimal .NET expects.</summary>
    public const string Gen0Size = "0x400000";

    /// <summary>
    /// The settings to add to <paramref name="variable"/>'s environment before running
    /// <paramref name="args"/>, or none: only <c>serve</c> is tuned (a CLI command is over in moments),
    /// and a variable already set is the operator's choice.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Plan(string[] args, Func<string, string?> variable) =>
        args.Length > 0 && args[0] == "serve" && variable(Gen0SizeVariable) is null
            ? [new(Gen0SizeVariable, Gen0Size)]
            : [];

    /// <summary>
    /// Restarts this process in place with <see cref="Plan"/>'s settings when there are any; returns
    /// (and Keyway runs on untuned) when there are none, off Linux, or when the restart fails.
    /// </summary>
    public static void Apply(string[] args)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        // The executable's own path rather than /proc/self/exe, so the process keeps its name
        // ("dotnet" or "keyway", not "exe") in ps, top and systemd.
        var settings = Plan(args, Environment.GetEnvironmentVariable);
        if (settings.Count == 0 || Environment.ProcessPath is not { } executable || ReadCommandLine() is not { Count: > 0 } argv)
        {
            return;
        }

        var environment = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            environment.Add($"{entry.Key}={entry.Value}");
        }

        foreach (var (name, value) in settings)
        {
            environment.Add($"{name}={value}");
        }

        // If execve then fails (a seccomp policy, say), Keyway runs on untuned and without the
        // diagnostics socket: the server matters more than the tools.
        RemoveDiagnosticsSocket();
        Exec(executable, argv, environment);
    }

    /// <summary>
    /// The runtime that is about to be replaced has made its diagnostics socket,
    /// <c>dotnet-diagnostic-{pid}-{start time}-socket</c> in the temporary directory. The next runtime
    /// computes the same name (same pid, same start time) and cannot listen where a file already is,
    /// which would leave dotnet-counters, dotnet-trace and dotnet-dump unable to attach: remove it first.
    /// </summary>
    private static void RemoveDiagnosticsSocket()
    {
        try
        {
            foreach (var socket in Directory.EnumerateFiles(Path.GetTempPath(), $"dotnet-diagnostic-{Environment.ProcessId}-*-socket"))
            {
                File.Delete(socket);
            }
        }
        catch (IOException)
        {
            // Diagnostics are a convenience: the server runs either way.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// This process's exact arguments, the runtime host's included (<c>dotnet keyway.dll serve …</c> or
    /// <c>keyway serve …</c>), from <c>/proc/self/cmdline</c>; null when it cannot be read.
    /// </summary>
    private static List<string>? ReadCommandLine()
    {
        try
        {
            var bytes = File.ReadAllBytes("/proc/self/cmdline");
            var argv = new List<string>();
            var start = 0;
            for (var i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] == 0)
                {
                    argv.Add(Encoding.UTF8.GetString(bytes, start, i - start));
                    start = i + 1;
                }
            }

            return argv;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static void Exec(string path, List<string> argv, List<string> environment)
    {
        var argvPointers = Pointers(argv);
        var environmentPointers = Pointers(environment);
        try
        {
            // Returns only on failure; on success this process image is gone.
            _ = ExecVE(path, argvPointers, environmentPointers);
        }
        finally
        {
            Free(argvPointers);
            Free(environmentPointers);
        }
    }

    // NUL-terminated UTF-8 strings, then a null pointer: the layout execve reads.
    private static nint[] Pointers(List<string> values)
    {
        var pointers = new nint[values.Count + 1];
        for (var i = 0; i < values.Count; i++)
        {
            pointers[i] = Marshal.StringToCoTaskMemUTF8(values[i]);
        }

        return pointers;
    }

    private static void Free(nint[] pointers)
    {
        foreach (var pointer in pointers)
        {
            Marshal.FreeCoTaskMem(pointer);
        }
    }

    [LibraryImport("libc", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ExecVE(string path, nint[] argv, nint[] envp);
}
