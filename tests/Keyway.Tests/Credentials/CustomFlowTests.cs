using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Credentials;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Templates;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Credentials;

/// <summary>The custom login flow's step pipeline, on a fake clock and a fake HTTP handler.</summary>
public sealed class CustomFlowProviderTests
{
    private const string Password = "hunter2-correct-horse";
    private static readonly CredentialKey Key = EngineFixture.Key;

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero));

    private static readonly Dictionary<string, object?> Variables = new()
    {
        ["API_USER"] = "svc",
        ["API_PASSWORD"] = new Secret(Password),
    };

    internal static AuthStepDefinition Login => new()
    {
        Type = "request",
        Name = "login",
        Method = "POST",
        Url = "https://api.example.com/login",
        Headers = new() { ["Content-Type"] = "application/json" },
        Body = "{\"username\": \"{{ environment.variables.API_USER }}\", \"password\": \"{{ environment.variables.API_PASSWORD }}\"}",
    };

    internal static AuthDefinition Flow(params AuthStepDefinition[] extraSteps) => new()
    {
        Type = "custom",
        Steps = [Login, new() { Type = "variable", Name = "TOKEN", Value = "{{ login.body.session.token }}" }, .. extraSteps],
        Apply = new() { Headers = new() { ["Authorization"] = "Bearer {{ TOKEN }}" } },
        ExpiresIn = "{{ login.body.session.expiresIn }}",
    };

    internal static CompiledResource Compile(AuthDefinition auth) =>
        ResourceCompiler.Compile("api", 1, new ResourceDefinition { BaseUrl = "https://api.example.com", Auth = auth });

    private (CustomFlowProvider Provider, FakeHandler Handler) Provider(AuthDefinition auth, FakeHandler? handler = null)
    {
        handler ??= LoginApi();
        var compiled = Compile(auth);
        var scope = new TemplateScope().WithEnvironmentVariables(Variables);
        var provider = new CustomFlowProvider(new CustomFlowClient(new HttpClient(handler), _time), compiled.Custom!, scope,
            Redactor.For(Variables.Values.OfType<Secret>()), CustomFlowProvider.HashParameters(compiled.Custom!, "production", Variables));
        return (provider, handler);
    }

    /// <summary>POST /login → a session token (tok-N) living 120 s, with an X-CSRF header; POST /refresh → a renewed token (ref-N).</summary>
    private static FakeHandler LoginApi() => new(async request =>
    {
        var path = request.RequestUri!.AbsolutePath;
        if (path == "/login")
        {
            var body = JsonNode.Parse(await request.Content!.ReadAsStringAsync())!;
            if ((string?)body["password"] != Password)
            {
                return Json(HttpStatusCode.Unauthorized, "{\"error\":\"bad password\"}");
            }

            var response = Json(HttpStatusCode.OK, $"{{\"session\":{{\"token\":\"tok-{Guid.NewGuid():N}\",\"expiresIn\":120}}}}");
            response.Headers.Add("X-CSRF", "csrf-" + Guid.NewGuid().ToString("N"));
            return response;
        }

        if (path == "/refresh")
        {
            return request.Headers.Authorization?.Parameter?.StartsWith("tok-", StringComparison.Ordinal) == true
                ? Json(HttpStatusCode.OK, $"{{\"token\":\"ref-{Guid.NewGuid():N}\"}}")
                : Json(HttpStatusCode.Unauthorized, "{\"error\":\"no session\"}");
        }

        return new HttpResponseMessage(HttpStatusCode.NotFound);
    });

    internal static HttpResponseMessage Json(HttpStatusCode status, string json) =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    [Fact]
    public async Task Steps_run_in_order_and_their_variables_become_the_credential()
    {
        var (provider, handler) = Provider(Flow(new AuthStepDefinition { Type = "javascript", Name = "derived", Code = "return { CSRF: login.headers['x-csrf'], USER: environment.variables.API_USER };" }));

        var result = await provider.AcquireAsync(Key, default);

        Assert.True(result.Succeeded, result.Error);
        var tokens = result.Tokens!;
        var sent = Assert.Single(handler.Requests);
        Assert.Equal("POST", sent.Method);
        Assert.Equal("application/json", sent.ContentType);
        Assert.Equal($"{{\"username\": \"svc\", \"password\": \"{Password}\"}}", sent.Body);
        Assert.StartsWith("tok-", tokens.Extras["TOKEN"].Reveal(), StringComparison.Ordinal);
        Assert.StartsWith("csrf-", tokens.Extras["CSRF"].Reveal(), StringComparison.Ordinal);
        Assert.Equal("svc", tokens.Extras["USER"].Reveal());
        Assert.Equal(CustomFlowProvider.Digest(tokens.Extras), tokens.AccessToken);
        Assert.Null(tokens.RefreshToken);
        Assert.Equal(_time.GetUtcNow().AddSeconds(120), tokens.ExpiresAt);
    }

    [Fact]
    public async Task Expiry_comes_from_a_jwt_when_there_is_no_expiresIn_then_from_the_fixed_lifetime_then_nothing()
    {
        var exp = _time.GetUtcNow().AddMinutes(7);
        var jwt = FakeTokenProvider.Jwt(exp) + ".sig";
        var handler = new FakeHandler(_ => Task.FromResult(Json(HttpStatusCode.OK, $"{{\"jwt\":\"{jwt}\",\"opaque\":\"abc-123\"}}")));
        AuthDefinition WithToken(string value, string? jwtTemplate, int? lifetime) => Flow() with
        {
            Steps = [Login, new() { Type = "variable", Name = "TOKEN", Value = value }],
            ExpiresIn = null,
            Jwt = jwtTemplate,
            LifetimeSeconds = lifetime,
        };

        var fromJwt = await Provider(WithToken("{{ login.body.jwt }}", "{{ TOKEN }}", 60), handler).Provider.AcquireAsync(Key, default);
        var fromLifetime = await Provider(WithToken("{{ login.body.opaque }}", "{{ TOKEN }}", 60), handler).Provider.AcquireAsync(Key, default);
        var never = await Provider(WithToken("{{ login.body.opaque }}", null, null), handler).Provider.AcquireAsync(Key, default);

        Assert.Equal(exp.ToUnixTimeSeconds(), fromJwt.Tokens!.ExpiresAt!.Value.ToUnixTimeSeconds());
        Assert.Equal(_time.GetUtcNow().AddSeconds(60), fromLifetime.Tokens!.ExpiresAt);
        Assert.Null(never.Tokens!.ExpiresAt);
    }

    [Fact]
    public async Task Refresh_steps_see_the_previous_variables_and_keep_those_they_do_not_renew()
    {
        var auth = Flow(new AuthStepDefinition { Type = "javascript", Name = "derived", Code = "return { CSRF: login.headers['x-csrf'] };" }) with
        {
            RefreshSteps =
            [
                new() { Type = "request", Name = "renew", Method = "POST", Url = "https://api.example.com/refresh", Headers = new() { ["Authorization"] = "Bearer {{ TOKEN }}" } },
                new() { Type = "variable", Name = "TOKEN", Value = "{{ renew.body.token }}" },
            ],
        };
        var (provider, handler) = Provider(auth);
        var first = (await provider.AcquireAsync(Key, default)).Tokens!;
        _time.Advance(TimeSpan.FromSeconds(100));

        var renewed = await provider.RefreshAsync(Key, first, default);

        Assert.True(renewed.Succeeded, renewed.Error);
        Assert.Equal(first.AccessToken, first.RefreshToken);
        Assert.Equal(["/login", "/refresh"], handler.Requests.Select(r => r.Path));
        Assert.Equal("Bearer " + first.Extras["TOKEN"].Reveal(), handler.Requests[1].Authorization);
        Assert.StartsWith("ref-", renewed.Tokens!.Extras["TOKEN"].Reveal(), StringComparison.Ordinal);
        Assert.Equal(first.Extras["CSRF"], renewed.Tokens.Extras["CSRF"]);
        Assert.NotEqual(first.AccessToken, renewed.Tokens.AccessToken);
        // The refresh steps give no expiresIn: the login's template cannot be read, and nothing else says.
        Assert.Null(renewed.Tokens.ExpiresAt);
    }

    [Fact]
    public async Task Refresh_steps_that_find_the_session_gone_fall_back_to_a_full_login()
    {
        var auth = Flow() with
        {
            RefreshSteps = [new() { Type = "request", Name = "renew", Method = "POST", Url = "https://api.example.com/refresh", Headers = new() { ["Authorization"] = "Bearer {{ TOKEN }}" } }],
        };
        var (provider, handler) = Provider(auth);
        var stale = new TokenSet { AccessToken = new Secret("x"), ObtainedAt = _time.GetUtcNow(), Extras = new Dictionary<string, Secret> { ["TOKEN"] = new("gone-session") } };

        var result = await provider.RefreshAsync(Key, stale, default);

        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(["/refresh", "/login"], handler.Requests.Select(r => r.Path));
        Assert.StartsWith("tok-", result.Tokens!.Extras["TOKEN"].Reveal(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable, "Transient")]
    [InlineData(HttpStatusCode.TooManyRequests, "Transient")]
    [InlineData(HttpStatusCode.Unauthorized, "Misconfigured")]
    [InlineData(HttpStatusCode.Forbidden, "Misconfigured")]
    [InlineData(HttpStatusCode.BadRequest, "Misconfigured")]
    public async Task A_failing_step_is_classified_and_named(HttpStatusCode status, string expected)
    {
        var kind = Enum.Parse<FailureKind>(expected);
        var (provider, _) = Provider(Flow(), new FakeHandler(_ => Task.FromResult(Json(status, "{\"error\":\"nope\"}"))));

        var result = await provider.AcquireAsync(Key, default);

        Assert.Equal(kind, result.Failure);
        Assert.Contains("'login'", result.Error, StringComparison.Ordinal);
        Assert.Contains($"answered {(int)status}", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_step_that_cannot_connect_or_times_out_is_transient()
    {
        var (unreachable, _) = Provider(Flow(), new FakeHandler(_ => throw new HttpRequestException("Connection refused")));
        var (slow, _) = Provider(Flow(), new FakeHandler(_ => throw new TaskCanceledException("timed out")));

        Assert.Equal(FailureKind.Transient, (await unreachable.AcquireAsync(Key, default)).Failure);
        Assert.Equal(FailureKind.Transient, (await slow.AcquireAsync(Key, default)).Failure);
    }

    [Fact]
    public async Task Step_errors_never_carry_the_password_or_the_session_token()
    {
        var leaky = new FakeHandler(async request => request.RequestUri!.AbsolutePath == "/login"
            ? Json(HttpStatusCode.OK, "{\"session\":{\"token\":\"tok-leaky-session-value\",\"expiresIn\":60}}")
            : Json(HttpStatusCode.BadRequest, $"{{\"error\":\"bad\", \"echo\": {JsonValue.Create(await request.Content!.ReadAsStringAsync()).ToJsonString()}}}"));
        var auth = Flow(new AuthStepDefinition
        {
            Type = "request",
            Name = "check",
            Method = "POST",
            Url = "https://api.example.com/check",
            Body = "{{ TOKEN }} {{ environment.variables.API_PASSWORD }}",
        });
        var (provider, _) = Provider(auth, leaky);

        var result = await provider.AcquireAsync(Key, default);

        Assert.Equal(FailureKind.Misconfigured, result.Failure);
        Assert.Contains("'check'", result.Error, StringComparison.Ordinal);
        Assert.Contains(Secret.Redacted, result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-leaky-session-value", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_javascript_step_keeps_every_sandbox_limit_and_must_return_an_object()
    {
        var (looping, _) = Provider(Flow(new AuthStepDefinition { Type = "javascript", Name = "spin", Code = "while (true) {} return {};" }));
        var (scalar, _) = Provider(Flow(new AuthStepDefinition { Type = "javascript", Name = "scalar", Code = "return 42;" }));
        var (throwing, _) = Provider(Flow(new AuthStepDefinition { Type = "javascript", Name = "boom", Code = "throw new Error('token is ' + TOKEN);" }));

        var loop = await looping.AcquireAsync(Key, default);
        var notObject = await scalar.AcquireAsync(Key, default);
        var thrown = await throwing.AcquireAsync(Key, default);

        Assert.Equal(FailureKind.Misconfigured, loop.Failure);
        Assert.Contains("limit", loop.Error, StringComparison.Ordinal);
        Assert.Contains("must return an object", notObject.Error, StringComparison.Ordinal);
        Assert.Contains("'boom'", thrown.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-", thrown.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_engine_stores_the_variables_encrypted_and_another_replica_reads_them_back()
    {
        await using var f = await EngineFixture.CreateAsync();
        var compiled = Compile(Flow(new AuthStepDefinition { Type = "javascript", Name = "derived", Code = "return { CSRF: login.headers['x-csrf'] };" }));
        var scope = new TemplateScope().WithEnvironmentVariables(Variables);
        var handler = LoginApi();
        var provider = new CustomFlowProvider(new CustomFlowClient(new HttpClient(handler), f.Time), compiled.Custom!, scope, Redactor.None, "custom-1");

        var first = await f.Engine.GetAsync(Key, provider, default);
        var onReplica = await f.NewEngine().GetAsync(Key, provider, default);
        await using var connection = await f.Database.OpenAsync(default);
        var raw = await connection.ExecuteScalarAsync<byte[]>("SELECT extras FROM credentials");

        Assert.Single(handler.Requests);
        Assert.Equal(first.Tokens.Extras["TOKEN"], onReplica.Tokens.Extras["TOKEN"]);
        Assert.Equal(first.Tokens.Extras["CSRF"], onReplica.Tokens.Extras["CSRF"]);
        Assert.DoesNotContain(first.Tokens.Extras["TOKEN"].Reveal(), Encoding.Latin1.GetString(raw!));
    }

    [Fact]
    public async Task A_rejected_session_logs_in_once_again_and_expiry_logs_in_again()
    {
        await using var f = await EngineFixture.CreateAsync();
        var compiled = Compile(Flow());
        var handler = LoginApi();
        var provider = new CustomFlowProvider(new CustomFlowClient(new HttpClient(handler), f.Time), compiled.Custom!,
            new TemplateScope().WithEnvironmentVariables(Variables), Redactor.None, "custom-1");
        var first = await f.Engine.GetAsync(Key, provider, default);

        var rejections = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => f.Engine.RejectAsync(Key, provider, first.Tokens.AccessToken, default)));
        f.Time.Advance(TimeSpan.FromSeconds(121));
        var afterExpiry = await f.Engine.GetAsync(Key, provider, default);

        Assert.Equal(3, handler.Requests.Count);
        Assert.Single(rejections.Select(c => c.Tokens.Extras["TOKEN"].Reveal()).Distinct());
        Assert.NotEqual(first.Tokens.Extras["TOKEN"], rejections[0].Tokens.Extras["TOKEN"]);
        Assert.NotEqual(rejections[0].Tokens.Extras["TOKEN"], afterExpiry.Tokens.Extras["TOKEN"]);
    }

    [Fact]
    public async Task The_binding_applies_headers_query_and_cookies_and_redacts_every_variable()
    {
        var auth = Flow(new AuthStepDefinition { Type = "javascript", Name = "derived", Code = "return { CSRF: login.headers['x-csrf'] };" }) with
        {
            Apply = new()
            {
                Headers = new() { ["Authorization"] = "Bearer {{ TOKEN }}", ["X-CSRF"] = "{{ CSRF }}" },
                Query = new() { ["session"] = "{{ TOKEN }}" },
                Cookies = new() { ["sid"] = "{{ TOKEN }}" },
            },
        };
        var compiled = Compile(auth);
        var scope = new TemplateScope().WithEnvironmentVariables(Variables);
        var provider = new CustomFlowProvider(new CustomFlowClient(new HttpClient(LoginApi()), _time), compiled.Custom!, scope, Redactor.None, "h");
        var tokens = (await provider.AcquireAsync(Key, default)).Tokens!;
        var credential = new Credential(Key, tokens, 1, null, "h");
        var binding = new CredentialBinding("api", "production", provider, compiled.Custom!, scope);
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://api.example.com/data?x=1");
        request.Headers.Add("Cookie", "theme=dark");

        binding.Apply(request, credential);
        var redactor = binding.RedactorFor(Redactor.None, credential);

        var token = tokens.Extras["TOKEN"].Reveal();
        var csrf = tokens.Extras["CSRF"].Reveal();
        Assert.Equal("Bearer " + token, request.Headers.Authorization!.ToString());
        Assert.Equal(csrf, request.Headers.GetValues("X-CSRF").Single());
        Assert.Equal($"https://api.example.com/data?x=1&session={token}", request.RequestUri!.AbsoluteUri);
        Assert.Equal($"theme=dark; sid={token}", request.Headers.GetValues("Cookie").Single());
        Assert.Equal("a [REDACTED] b [REDACTED]", redactor.Redact($"a {token} b {csrf}"));
    }
}

/// <summary>An <see cref="HttpMessageHandler"/> answering from a function, recording what it was sent.</summary>
internal sealed class FakeHandler(Func<HttpRequestMessage, Task<HttpResponseMessage>> answer) : HttpMessageHandler
{
    private readonly List<SentRequest> _requests = [];

    public IReadOnlyList<SentRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(cancellationToken);
        lock (_requests)
        {
            _requests.Add(new SentRequest(request.Method.Method, request.RequestUri!.AbsolutePath, body,
                request.Content?.Headers.ContentType?.MediaType, request.Headers.Authorization?.ToString()));
        }

        return await answer(request);
    }
}

internal sealed record SentRequest(string Method, string Path, string Body, string? ContentType, string? Authorization);
