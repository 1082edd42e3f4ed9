using System.CommandLine;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Config;

namespace Keyway.Cli;

/// <summary>
/// Configuration as code (docs/config-as-code.md): <c>keyway export</c>, <c>get</c>, <c>plan</c> and
/// <c>apply</c>, over one document shape (<see cref="ConfigObject"/>) that the server's export
/// writes and the files hold.
/// </summary>
internal static class ConfigCommands
{
    /// <summary><c>keyway plan --detailed-exitcode</c> when there is something to change (2, Terraform's, is a usage error here).</summary>
    public const int Changes = 9;

    public static IEnumerable<Command> Create(CliIo io) => [Export(io), Get(io), Plan(io), ConfigApplyCommand.Create(io)];

    private static Command Export(CliIo io)
    {
        var output = new Option<string?>("--output", "-o")
        {
            Description = "A directory (one file per object: DIR/resources/NAME.yaml, DIR/variables/ENV/NAME.yaml …, and DIR/keyway.schema.json; files of objects that are gone are removed) " +
                          "or a .yaml file (one stream). Standard output without it.",
        };
        var envs = new Option<string[]>("--env") { Description = "Only these environments (and their variables); every other kind in full.", AllowMultipleArgumentsPerToken = true };
        var command = new Command("export", "Write the whole configuration as YAML: environments, variables (secrets as metadata, never a value), " +
            "resources, queries, groups, grants, schedules, webhooks. Sorted, defaults left out: a diff shows only real changes. Needs an admin.") { output, envs };
        command.SetAction(io.Client(async (client, o, parse, ct) =>
        {
            var documents = await ExportAsync(client, parse.GetValue(envs), ct);
            var schema = SchemaLine(client);
            if (parse.GetValue(output) is not { } target)
            {
                await io.Out.WriteAsync(Stream(schema, documents));
                return;
            }

            if (Path.GetExtension(target) is ".yaml" or ".yml")
            {
                await Write(target, Stream(schema, documents), ct);
                io.Error.WriteLine($"Wrote {documents.Count} objects to {target}.");
                return;
            }

            // The schema goes with the files, and each names it by a relative path: the export reads the
            // same from any server, and editors check it offline.
            await Write(Path.Combine(target, SchemaFile), ConfigSchema.Text, ct);
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var document in documents)
            {
                var relative = FileOf(document);
                var file = Path.GetFullPath(Path.Combine(target, relative));
                written.Add(file);
                var up = string.Concat(Enumerable.Repeat("../", relative.Count(c => c == Path.DirectorySeparatorChar)));
                await Write(file, $"# yaml-language-server: $schema={up}{SchemaFile}\n" + ConfigYaml.Write(document.ToJson()), ct);
            }

            foreach (var folder in ConfigKinds.Order.Select(k => Path.Combine(target, ConfigKinds.Folder(k))).Where(Directory.Exists))
            {
                foreach (var stale in Directory.EnumerateFiles(folder, "*.yaml", SearchOption.AllDirectories).Select(Path.GetFullPath).Where(f => !written.Contains(f)))
                {
                    File.Delete(stale);
                }
            }

            io.Error.WriteLine($"Wrote {documents.Count} objects under {target}.");
        }));
        return command;
    }

    private static Command Get(CliIo io)
    {
        var kind = new Argument<string>("kind") { Description = $"One of {string.Join(", ", ConfigKinds.Order.Select(k => k.ToLowerInvariant()))}." };
        var name = new Argument<string>("name") { Description = "The object's name (grants: the resource's, or '*')." };
        var env = new Option<string?>("--env") { Description = "A variable's environment (default production)." };
        var format = new Option<string>("--output", "-o") { Description = "yaml (default) or json.", DefaultValueFactory = _ => "yaml" };
        format.AcceptOnlyFromAmong("yaml", "json");
        var command = new Command("get", "Print one object exactly as 'keyway export' writes it; 'keyway apply -f' takes it back unchanged.") { kind, name, env, format };
        command.SetAction(io.Client(async (client, o, parse, ct) =>
        {
            var which = ConfigKinds.Parse(parse.GetValue(kind)) ?? throw new CliException(ExitCodes.Usage,
                $"Unknown kind '{parse.GetValue(kind)}': one of {string.Join(", ", ConfigKinds.Order.Select(k => k.ToLowerInvariant()))}.");
            var document = await GetAsync(client, which, parse.GetValue(name)!, which == ConfigKinds.Variable ? parse.GetValue(env) ?? "production" : null, ct);
            if (parse.GetValue(format) == "json" || o.Json)
            {
                o.WriteJson(document.ToJson());
                return;
            }

            await io.Out.WriteAsync(SchemaLine(client) + ConfigYaml.Write(document.ToJson()));
        }));
        return command;
    }

    private static Command Plan(CliIo io)
    {
        var files = ConfigApplyCommand.FilesOption();
        var prune = ConfigApplyCommand.PruneOption();
        var detailed = new Option<bool>("--detailed-exitcode") { Description = $"Exit {Changes} when there is something to change, 0 when there is nothing (for CI)." };
        var command = new Command("plan", "Show what 'keyway apply' would create, update and delete, field by field (secrets by name only). Changes nothing.")
        {
            files, prune, detailed,
        };
        command.SetAction(async (parse, ct) =>
        {
            var o = io.For(parse);
            try
            {
                using var client = KeywayClient.FromEnvironment();
                var plan = await MakePlanAsync(io, client, parse.GetValue(files)!, parse.GetValue(prune), ct);
                if (o.Json)
                {
                    o.WriteJson(plan.ToJson());
                }
                else
                {
                    plan.Write(io.Out);
                }

                return parse.GetValue(detailed) && plan.Changes.Count > 0 ? Changes : ExitCodes.Ok;
            }
            catch (CliException e)
            {
                o.Error(e);
                return e.ExitCode;
            }
        });
        return command;
    }

    /// <summary>The files' objects against the server's export.</summary>
    internal static async Task<ConfigPlan> MakePlanAsync(CliIo io, KeywayClient client, IReadOnlyList<string> paths, bool prune, CancellationToken ct)
    {
        var files = await ConfigSet.ReadAsync(paths, io.In, ct);
        var server = await ExportAsync(client, null, ct);
        return ConfigPlan.Make(files, server, prune);
    }

    internal static async Task<List<ConfigObject>> ExportAsync(KeywayClient client, string[]? environments, CancellationToken ct)
    {
        var query = environments is { Length: > 0 } ? "?" + string.Join('&', environments.Select(e => "env=" + Uri.EscapeDataString(e))) : "";
        var answer = await client.GetAsync("api/v1/config/export" + query, ct);
        return (answer?["documents"] as JsonArray ?? []).OfType<JsonObject>().Select(FromJson).ToList();
    }

    internal static ConfigObject FromJson(JsonObject json) => new(
        json["kind"]!.GetValue<string>(), json["name"]!.GetValue<string>(), json["environment"]?.GetValue<string>(),
        json["spec"] as JsonObject is { } spec ? (JsonObject)spec.DeepClone() : []);

    /// <summary>
    /// One object: a resource, query or schedule read from its own endpoint (anyone who may read it may
    /// get it), in canonical form; the other kinds from the export (they are an admin's to read).
    /// </summary>
    private static async Task<ConfigObject> GetAsync(KeywayClient client, string kind, string name, string? environment, CancellationToken ct)
    {
        var escaped = Uri.EscapeDataString(name);
        var (path, field) = kind switch
        {
            ConfigKinds.Resource => ($"api/v1/resources/{escaped}", "definition"),
            ConfigKinds.Query => ($"api/v1/queries/{escaped}", "definition"),
            ConfigKinds.Schedule => ($"api/v1/schedules/{escaped}", "schedule"),
            _ => ((string?)null, (string?)null),
        };
        if (path is not null)
        {
            var answer = await client.GetAsync(path, ct);
            var spec = ConfigTree.WithoutNulls(answer?[field!]) as JsonObject ?? [];
            return new ConfigObject(kind, name, null, ConfigSpecs.Canonical(kind, spec));
        }

        var documents = await ExportAsync(client, environment is null ? null : [environment], ct);
        return documents.FirstOrDefault(d => d.Kind == kind && d.Name == name && d.Environment == environment)
            ?? throw new CliException(ExitCodes.NotFound, $"There is no {kind.ToLowerInvariant()} '{name}'{(environment is null ? "" : $" in environment '{environment}'")}.", "not_found");
    }

    /// <summary>The schema's file name in an exported directory (<c>plan</c> and <c>apply</c> skip it).</summary>
    public const string SchemaFile = "keyway.schema.json";

    /// <summary>The first line of every file written: editors that read it (yaml-language-server) complete and check the file with the schema.</summary>
    private static string SchemaLine(KeywayClient client) => $"# yaml-language-server: $schema={client.Address}{ConfigEndpoints.SchemaPath}\n";

    private static string Stream(string schema, IReadOnlyList<ConfigObject> documents)
    {
        var text = new StringBuilder(schema);
        foreach (var document in documents)
        {
            text.Append("---\n").Append(ConfigYaml.Write(document.ToJson()));
        }

        return text.ToString();
    }

    /// <summary>Where <c>export -o DIR</c> writes an object: its kind's folder, variables by environment, grants on every resource as <c>_every-resource</c>.</summary>
    internal static string FileOf(ConfigObject o)
    {
        var name = o.Name == "*" ? "_every-resource" : o.Name;
        return o.Environment is null
            ? Path.Combine(ConfigKinds.Folder(o.Kind), name + ".yaml")
            : Path.Combine(ConfigKinds.Folder(o.Kind), o.Environment, name + ".yaml");
    }

    private static async Task Write(string path, string text, CancellationToken ct)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            await File.WriteAllTextAsync(path, text, new UTF8Encoding(false), ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Failure, $"Cannot write {path}: {e.Message}");
        }
    }
}
