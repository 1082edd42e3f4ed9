using System.Text.RegularExpressions;
using System.Xml.Linq;
using Keyway.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace Keyway.Tests.Packaging;

/// <summary>
/// The container and Kubernetes recipes, checked as files (no container engine runs on the test machines):
/// a non-root image with a read-only-friendly layout and a health check, a compose file of three replicas on
/// PostgreSQL with no secret written into it, and manifests whose probes, security context and secret
/// references hold together.
/// </summary>
public sealed partial class DeploymentFileTests
{
    private static readonly string s_root = Integration.ReadmeTourTests.RepositoryRoot();

    [Fact]
    public void The_Dockerfile_builds_in_one_stage_and_runs_as_a_non_root_user_with_its_data_on_a_volume()
    {
        var lines = File.ReadAllLines(Path.Combine(s_root, "Dockerfile")).Where(l => !l.TrimStart().StartsWith('#')).ToList();
        var stages = lines.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, stages.Count);
        Assert.Contains("sdk:10.0", stages[0], StringComparison.Ordinal);
        Assert.Contains("aspnet:10.0", stages[1], StringComparison.Ordinal);

        // What follows the last FROM is the image that runs.
        var runtime = lines.Skip(lines.IndexOf(stages[1])).ToList();
        var user = Assert.Single(runtime, l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.Matches(@"^USER [1-9][0-9]*:[1-9][0-9]*$", user);
        Assert.Contains(runtime, l => l.StartsWith("VOLUME", StringComparison.Ordinal) && l.Contains("/var/lib/keyway", StringComparison.Ordinal));
        Assert.Contains(runtime, l => l.Contains("KEYWAY_DATA_DIR=/var/lib/keyway", StringComparison.Ordinal));
        Assert.Contains(runtime, l => l.Contains("HEALTHCHECK", StringComparison.Ordinal));
        Assert.Contains(runtime, l => l.Contains("\"wait-ready\"", StringComparison.Ordinal));
        Assert.Contains(runtime, l => l.StartsWith("EXPOSE 7510", StringComparison.Ordinal));
        // No secret is baked into an image layer.
        Assert.DoesNotContain(lines, l => l.Contains("KEYWAY_MASTER_KEY", StringComparison.Ordinal) || l.Contains("KEYWAY_ADMIN_TOKEN", StringComparison.Ordinal));
        var ignored = File.ReadAllLines(Path.Combine(s_root, ".dockerignore"));
        Assert.Contains("keyway-data/", ignored);
        Assert.Contains(".git/", ignored);
    }

    [Fact]
    public void The_SDK_container_settings_run_as_a_non_root_user_on_the_documented_port()
    {
        var project = XDocument.Load(Path.Combine(s_root, "src", "Keyway", "Keyway.csproj"));
        var user = project.Descendants("ContainerUser").Single().Value;
        Assert.True(int.TryParse(user, out var uid) && uid > 0, $"ContainerUser {user}");
        Assert.Equal("7510", project.Descendants("ContainerPort").Single().Attribute("Include")!.Value);
        Assert.Equal("serve", project.Descendants("ContainerAppCommandArgs").Single().Attribute("Include")!.Value);
        var variables = project.Descendants("ContainerEnvironmentVariable").ToDictionary(e => e.Attribute("Include")!.Value, e => e.Attribute("Value")!.Value);
        Assert.Equal("http://0.0.0.0:7510", variables["KEYWAY_URLS"]);
        Assert.StartsWith("/home/app/", variables["KEYWAY_DATA_DIR"], StringComparison.Ordinal);
        Assert.DoesNotContain(variables.Keys, k => k is "KEYWAY_MASTER_KEY" or "KEYWAY_ADMIN_TOKEN");
    }

    [Fact]
    public void The_compose_file_runs_three_hardened_replicas_on_PostgreSQL_with_every_secret_from_the_environment()
    {
        var compose = LoadYaml(Path.Combine(s_root, "deploy", "compose", "docker-compose.yml"));
        var services = (YamlMappingNode)compose["services"];
        Assert.Contains(new YamlScalarNode("postgres"), services.Children.Keys);
        var anchor = (YamlMappingNode)compose["x-keyway"];
        Assert.Equal("true", Scalar(anchor, "read_only"));
        Assert.Equal("ALL", ((YamlSequenceNode)anchor["cap_drop"]).Children.Single().ToString());
        Assert.Contains("/tmp", ((YamlSequenceNode)anchor["tmpfs"]).Children.Select(c => c.ToString()));
        var environment = (YamlMappingNode)anchor["environment"];
        foreach (var name in (string[])["KEYWAY_MASTER_KEY", "KEYWAY_DATABASE_URL", "KEYWAY_ADMIN_TOKEN"])
        {
            // A required variable of the .env file: compose refuses to start without it, and no value is written here.
            Assert.Matches(@"\$\{[A-Z_]+:\?", Scalar(environment, name));
        }

        var replicas = services.Children.Where(s => s.Key.ToString().StartsWith("keyway-", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, replicas.Count);
        var nginx = File.ReadAllText(Path.Combine(s_root, "deploy", "compose", "nginx.conf"));
        foreach (var replica in replicas)
        {
            Assert.Contains($"server {replica.Key}:7510", nginx, StringComparison.Ordinal);
        }

        Assert.Contains("proxy_buffering off", nginx, StringComparison.Ordinal);
    }

    [Fact]
    public void The_Kubernetes_manifests_probe_the_health_endpoints_run_locked_down_and_reference_only_the_documented_secret_keys()
    {
        var directory = Path.Combine(s_root, "deploy", "kubernetes");
        var kustomization = LoadYaml(Path.Combine(directory, "kustomization.yaml"));
        var resources = ((YamlSequenceNode)kustomization["resources"]).Children.Select(r => r.ToString()).ToList();
        Assert.All(resources, r => Assert.True(File.Exists(Path.Combine(directory, r)), $"kustomization names {r}, which does not exist"));

        var deployment = LoadYaml(Path.Combine(directory, "deployment.yaml"));
        var spec = (YamlMappingNode)deployment["spec"];
        var replicas = int.Parse(Scalar(spec, "replicas"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(replicas >= 3);
        var rolling = (YamlMappingNode)((YamlMappingNode)spec["strategy"])["rollingUpdate"];
        Assert.Equal("0", Scalar(rolling, "maxUnavailable"));
        var pod = (YamlMappingNode)((YamlMappingNode)spec["template"])["spec"];
        Assert.Equal("false", Scalar(pod, "automountServiceAccountToken"));
        var podSecurity = (YamlMappingNode)pod["securityContext"];
        Assert.Equal("true", Scalar(podSecurity, "runAsNonRoot"));
        Assert.Equal("RuntimeDefault", Scalar((YamlMappingNode)podSecurity["seccompProfile"], "type"));

        var container = (YamlMappingNode)((YamlSequenceNode)pod["containers"]).Children.Single();
        var security = (YamlMappingNode)container["securityContext"];
        Assert.Equal("false", Scalar(security, "allowPrivilegeEscalation"));
        Assert.Equal("true", Scalar(security, "readOnlyRootFilesystem"));
        Assert.Equal("ALL", ((YamlSequenceNode)((YamlMappingNode)security["capabilities"])["drop"]).Children.Single().ToString());
        Assert.Equal("/healthz", ProbePath(container, "livenessProbe"));
        Assert.Equal("/readyz", ProbePath(container, "readinessProbe"));
        Assert.Equal("/readyz", ProbePath(container, "startupProbe"));
        var portName = Scalar((YamlMappingNode)((YamlSequenceNode)container["ports"]).Children.Single(), "name");
        var resourcesNode = (YamlMappingNode)container["resources"];
        Assert.NotNull(((YamlMappingNode)resourcesNode["requests"])["memory"]);
        Assert.NotNull(((YamlMappingNode)resourcesNode["limits"])["memory"]);

        // Every secret the pod reads is one the documented 'kubectl create secret' command creates.
        var created = CreatedSecretKeys().Matches(File.ReadAllText(Path.Combine(directory, "kustomization.yaml"))).Select(m => m.Groups[1].Value).ToHashSet();
        var referenced = ((YamlSequenceNode)container["env"]).Children.Cast<YamlMappingNode>()
            .Where(e => e.Children.ContainsKey("valueFrom"))
            .Select(e => (YamlMappingNode)((YamlMappingNode)e["valueFrom"])["secretKeyRef"])
            .Select(r => (Scalar(r, "name"), Scalar(r, "key"))).ToList();
        Assert.Contains(referenced, r => r.Item2 == "master-key");
        Assert.All(referenced, r => Assert.True(r.Item1 == "keyway" && created.Contains(r.Item2), $"secret {r.Item1}/{r.Item2} is not created by the documented command"));

        var volumes = ((YamlSequenceNode)pod["volumes"]).Children.Cast<YamlMappingNode>().Select(v => Scalar(v, "name")).ToHashSet();
        Assert.All(((YamlSequenceNode)container["volumeMounts"]).Children.Cast<YamlMappingNode>(), m => Assert.Contains(Scalar(m, "name"), volumes));

        var service = LoadYaml(Path.Combine(directory, "service.yaml"));
        Assert.Equal(portName, Scalar((YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)service["spec"])["ports"]).Children.Single(), "targetPort"));
        var budget = LoadYaml(Path.Combine(directory, "poddisruptionbudget.yaml"));
        var minAvailable = int.Parse(Scalar((YamlMappingNode)budget["spec"], "minAvailable"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(minAvailable, 1, replicas - 1);
    }

    private static string ProbePath(YamlMappingNode container, string probe) =>
        Scalar((YamlMappingNode)((YamlMappingNode)container[probe])["httpGet"], "path");

    private static string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value!;

    private static YamlMappingNode LoadYaml(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return (YamlMappingNode)Assert.Single(stream.Documents).RootNode;
    }

    [GeneratedRegex(@"--from-literal=([a-z-]+)=")]
    private static partial Regex CreatedSecretKeys();
}
