using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway credential status|refresh|import|connect|disconnect</c>.</summary>
internal static class CredentialCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("credential", "Inspect and manage a resource's dynamic credential (OAuth 2.0, custom login). Tokens are never shown.");

        static Option<string> Env() => new("--env", "-e") { Description = "The environment.", DefaultValueFactory = _ => "production" };
        static Argument<string> Resource() => new("resource") { Description = "The resource." };
        static string Path(ParseResult parse, Argument<string> resource, Option<string> env, string suffix = "") =>
            $"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(resource)!)}/credential{suffix}?environment={Uri.EscapeDataString(parse.GetValue(env)!)}";

        var statusResource = Resource();
        var statusEnv = Env();
        var user = new Option<string?>("--user") { Description = "Another person's credential (admins)." };
        var status = new Command("status", "Show the credential's state, expiry, refresh counts and last error.") { statusResource, statusEnv, user };
        status.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var path = Path(parse, statusResource, statusEnv) + (parse.GetValue(user) is { } u ? "&user=" + Uri.EscapeDataString(u) : "");
            Show(output, await client.GetAsync(path, ct));
        }));

        var refreshResource = Resource();
        var refreshEnv = Env();
        var refresh = new Command("refresh", "Refresh the credential now.") { refreshResource, refreshEnv };
        refresh.SetAction(io.Client(async (client, output, parse, ct) =>
            Show(output, await client.PostAsync(Path(parse, refreshResource, refreshEnv, "/refresh"), null, ct))));

        var importResource = Resource();
        var importEnv = Env();
        var expiresIn = new Option<long?>("--expires-in") { Description = "Seconds the access token has left." };
        var import = new Command("import",
            "Import a token set obtained elsewhere. Reads JSON {\"accessToken\", \"refreshToken\", \"expiresIn\"} from stdin (never from the command line).\n" +
            "Example: printf '{\"refreshToken\": \"%s\"}' \"$RT\" | keyway credential import github")
        {
            importResource, importEnv, expiresIn,
        };
        import.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var text = await io.In.ReadToEndAsync(ct);
            JsonObject body;
            try
            {
                body = JsonNode.Parse(text) as JsonObject ?? throw new CliException(ExitCodes.Usage, "stdin must hold a JSON object.");
            }
            catch (System.Text.Json.JsonException)
            {
                // A bare token on stdin is taken as a refresh token.
                body = new JsonObject { ["refreshToken"] = text.Trim() };
            }

            if (parse.GetValue(expiresIn) is { } seconds)
            {
                body["expiresIn"] = seconds;
            }

            Show(output, await client.PutAsync(Path(parse, importResource, importEnv), body, ct));
        }));

        var connectResource = Resource();
        var connectEnv = Env();
        var connect = new Command("connect", "Start connecting an account (authorization code): prints the URL to open in a browser.") { connectResource, connectEnv };
        connect.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.SendAsync(HttpMethod.Get,
                $"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(connectResource)!)}/connect?environment={Uri.EscapeDataString(parse.GetValue(connectEnv)!)}",
                null, ct, accept: "application/json");
            if (output.Json)
            {
                output.WriteJson(doc);
                return;
            }

            io.Error.WriteLine("Open this address in a browser signed in to the Keyway console as you, and approve access; the page says when the account is connected:");
            io.Out.WriteLine(Output.Str(doc?["authorizeUrl"]));
        }));

        var disconnectResource = Resource();
        var disconnectEnv = Env();
        var disconnect = new Command("disconnect", "Disconnect: revoke the tokens at the provider (when it offers revocation) and forget them.") { disconnectResource, disconnectEnv };
        disconnect.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.DeleteAsync(Path(parse, disconnectResource, disconnectEnv), ct);
            output.Success(doc?["revokedAtProvider"]?.GetValue<bool>() == true
                ? "Disconnected; the provider revoked the tokens."
                : "Disconnected; the tokens are forgotten (the provider offers no revocation, or refused it).", doc);
        }));

        command.Subcommands.Add(status);
        command.Subcommands.Add(refresh);
        command.Subcommands.Add(import);
        command.Subcommands.Add(connect);
        command.Subcommands.Add(disconnect);
        return command;
    }

    private static void Show(Output output, JsonNode? doc) => output.Details(doc,
        ("resource", Output.Str(doc?["resource"])), ("environment", Output.Str(doc?["environment"])), ("owner", Output.Str(doc?["owner"])),
        ("state", Output.Str(doc?["state"])), ("expires", Output.When(doc?["expiresAt"])), ("last refreshed", Output.When(doc?["lastRefreshedAt"])),
        ("next refresh", Output.When(doc?["nextRefreshAt"])), ("refreshes", Output.Str(doc?["refreshCount"])), ("failures", Output.Str(doc?["failureCount"])),
        ("last error", Output.Str(doc?["lastError"])), ("connect at", Output.Str(doc?["connectUrl"])),
        ("refresh in flight", doc?["refreshingReplica"] is null ? "" : $"by replica {Output.Str(doc["refreshingReplica"])} since {Output.Str(doc["refreshStartedAt"])}"));
}
