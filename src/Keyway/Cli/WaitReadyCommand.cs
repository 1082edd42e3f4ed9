using System.CommandLine;
using Keyway.Hosting;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway operator wait-ready</c>: waits until a Keyway answers <c>/readyz</c> with 200, for service
/// managers (the packaged systemd unit's <c>ExecStartPost</c>), container entry scripts and deploy jobs.
/// </summary>
internal static class WaitReadyCommand
{
    private static readonly TimeSpan s_interval = TimeSpan.FromMilliseconds(250);

    public static Command Create(CliIo io)
    {
        var url = new Option<string?>("--url")
        {
            Description = "The Keyway to wait for (default: KEYWAY_ADDR, else the first of KEYWAY_URLS as this machine reaches it, else " + ServeOptions.DefaultUrls + ").",
        };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait before giving up (exit 1).", DefaultValueFactory = _ => 60 };
        var command = new Command("wait-ready", "Wait until Keyway answers /readyz with 200 (it has opened its store and serves), or give up after --timeout seconds.")
        {
            url, timeout,
        };
        command.SetAction(async (parse, ct) =>
        {
            var address = parse.GetValue(url) ?? Environment.GetEnvironmentVariable("KEYWAY_ADDR") ?? LocalAddress(Environment.GetEnvironmentVariable("KEYWAY_URLS"));
            if (!Uri.TryCreate(address.TrimEnd('/') + "/readyz", UriKind.Absolute, out var readyz) || readyz.Scheme is not ("http" or "https"))
            {
                await io.Error.WriteLineAsync($"error: '{address}' is not an http(s) address of Keyway (e.g. {ServeOptions.DefaultUrls}).");
                return ExitCodes.Usage;
            }

            var seconds = parse.GetValue(timeout);
            if (seconds is < 1 or > 3600)
            {
                await io.Error.WriteLineAsync("error: --timeout is a number of seconds from 1 to 3600.");
                return ExitCodes.Usage;
            }

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(TimeSpan.FromSeconds(seconds));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var last = "no answer yet";
            while (true)
            {
                try
                {
                    using var response = await http.GetAsync(readyz, deadline.Token);
                    if (response.IsSuccessStatusCode)
                    {
                        io.For(parse).Success($"Keyway at {address} is ready.");
                        return ExitCodes.Ok;
                    }

                    last = $"/readyz answered {(int)response.StatusCode}";
                }
                catch (HttpRequestException e)
                {
                    last = e.Message;
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    break;
                }

                try
                {
                    await Task.Delay(s_interval, deadline.Token);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    break;
                }
            }

            await io.Error.WriteLineAsync($"error: Keyway at {address} was not ready within {seconds} s ({last}). Look at its log (journalctl -u keyway).");
            return ExitCodes.Unreachable;
        });
        return command;
    }

    /// <summary>The first listen address as a client on this machine reaches it: a wildcard host becomes loopback.</summary>
    internal static string LocalAddress(string? urls)
    {
        var first = (string.IsNullOrWhiteSpace(urls) ? ServeOptions.DefaultUrls : urls).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
        return first.Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://[::]", "://[::1]", StringComparison.Ordinal)
            .Replace("://*", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://+", "://127.0.0.1", StringComparison.Ordinal);
    }
}
