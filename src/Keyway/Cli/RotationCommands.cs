using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway var rotate|rotations|rotation set|get|delete</c>: a secret variable's rotation flow, run
/// now, and its history. Added to <c>keyway var</c>.
/// </summary>
internal static class RotationCommands
{
    public static void AddTo(Command var, CliIo io)
    {
        Option<string> Env() => new("--env", "-e") { Description = "The environment.", DefaultValueFactory = _ => "production" };

        var rotateName = new Argument<string>("name") { Description = "The secret variable's name." };
        var rotateEnv = Env();
        var rotate = new Command("rotate", "Rotate a secret now with its rotation flow: mint a new value, store it as pending, verify it, commit it. The revoke of the old one, if defined, follows after its grace period.")
        {
            rotateName, rotateEnv,
        };
        rotate.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var (name, env) = (parse.GetValue(rotateName)!, parse.GetValue(rotateEnv)!);
            var doc = await client.PostAsync(VarCommands.VariablePath(env, name) + "/rotate", null, ct);
            var revoke = Output.Str(doc?["state"]) == "revoke_pending" ? $"; the old secret is revoked after {Output.When(doc?["revokeDueAt"])}" : "";
            output.Success($"'{name}' in '{env}' rotated: version {Output.Str(doc?["version"])} is current (rotation {Output.Str(doc?["id"])}{revoke}).", doc);
        }));

        var historyName = new Argument<string>("name") { Description = "The secret variable's name." };
        var historyEnv = Env();
        var limit = new Option<int?>("--limit") { Description = "How many rotations to show (newest first; default 20)." };
        var history = new Command("rotations", "List a variable's rotations, newest first: state, versions, provider ids, error codes. Never a value.")
        {
            historyName, historyEnv, limit,
        };
        history.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var path = VarCommands.VariablePath(parse.GetValue(historyEnv)!, parse.GetValue(historyName)!) + "/rotations" +
                (parse.GetValue(limit) is { } n ? $"?limit={n}" : "");
            var doc = await client.GetAsync(path, ct);
            output.Table(doc, doc?["rotations"] as JsonArray,
                ("STARTED", r => Output.When(r["startedAt"])), ("STATE", r => Output.Str(r["state"])), ("TRIGGER", r => Output.Str(r["trigger"])),
                ("FROM", r => Output.Str(r["fromVersion"])), ("VERSION", r => Output.Str(r["version"])), ("PROVIDER ID", r => Output.Str(r["newId"])),
                ("REVOKE", Revoke), ("ERROR", r => Output.Str(r["errorCode"])), ("ID", r => Output.Str(r["id"])));
        }));

        var definition = new Command("rotation", "Define, show or remove a secret variable's rotation flow.");
        var setName = new Argument<string>("name") { Description = "The secret variable's name." };
        var setEnv = Env();
        var file = new Option<string>("--file", "-f") { Description = "A JSON or YAML file with the rotation flow ('-' reads stdin). See docs/operations.md, \"Rotation flows\".", Required = true };
        var set = new Command("set", "Define how a secret is rotated (mint, value, id, verify, revoke, revokeAfter).\nExample: keyway var rotation set STRIPE_KEY -f rotation.yaml") { setName, setEnv, file };
        set.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var (name, env, path) = (parse.GetValue(setName)!, parse.GetValue(setEnv)!, parse.GetValue(file)!);
            string text;
            try
            {
                text = path == "-" ? await io.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliException(ExitCodes.Usage, $"Cannot read {path}: {e.Message}");
            }

            var documents = ConfigFiles.Parse(text, path == "-" ? "stdin" : path, "rotation flow");
            if (documents.Count != 1)
            {
                throw new CliException(ExitCodes.Invalid, $"{path}: expected one rotation flow, found {documents.Count}.");
            }

            var doc = await client.PutAsync(VarCommands.VariablePath(env, name) + "/rotation", documents[0].Body, ct);
            output.Success($"Rotation flow of '{name}' in '{env}' saved. Run it: keyway var rotate {name} --env {env}", doc);
        }));

        var getName = new Argument<string>("name") { Description = "The secret variable's name." };
        var getEnv = Env();
        var get = new Command("get", "Show a variable's rotation flow as JSON (templates and resource names; never a value).") { getName, getEnv };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync(VarCommands.VariablePath(parse.GetValue(getEnv)!, parse.GetValue(getName)!) + "/rotation", ct);
            output.WriteJson(doc?["rotation"]);
        }));

        var deleteName = new Argument<string>("name") { Description = "The secret variable's name." };
        var deleteEnv = Env();
        var delete = new Command("delete", "Remove a variable's rotation flow (its history stays).") { deleteName, deleteEnv };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var (name, env) = (parse.GetValue(deleteName)!, parse.GetValue(deleteEnv)!);
            await client.DeleteAsync(VarCommands.VariablePath(env, name) + "/rotation", ct);
            output.Success($"Rotation flow of '{name}' in '{env}' removed.", null);
        }));

        definition.Subcommands.Add(set);
        definition.Subcommands.Add(get);
        definition.Subcommands.Add(delete);
        var.Subcommands.Add(rotate);
        var.Subcommands.Add(history);
        var.Subcommands.Add(definition);
    }

    /// <summary>When the replaced key is revoked, or what became of the key a rolled-back rotation minted.</summary>
    private static string Revoke(JsonNode r) =>
        r["abandonedRevoke"] is { } abandoned ? "minted key " + Output.Str(abandoned)
        : r["revokeDueAt"] is null ? "-" : Output.When(r["revokeDueAt"]);
}
