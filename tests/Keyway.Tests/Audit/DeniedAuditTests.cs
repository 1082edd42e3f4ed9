using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Tests.Audit;

/// <summary>A 403 from <see cref="AccessPolicy.Demand"/> is recorded as a <c>denied</c> event where it becomes problem+json.</summary>
public sealed class DeniedAuditTests
{
    private static DefaultHttpContext Request(Caller? caller)
    {
        var http = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        http.Request.Method = "POST";
        http.Request.Path = "/api/v1/resources/billing/run";
        http.Request.QueryString = new QueryString("?environment=staging&token=abc");
        http.Request.RouteValues["name"] = "billing";
        http.Response.Body = new MemoryStream();
        if (caller is not null)
        {
            http.User = caller.ToPrincipal("test");
        }

        return http;
    }

    [Fact]
    public async Task A_refused_caller_is_recorded_with_what_was_refused_where()
    {
        var audit = new RecordingAuditLog();
        var handler = new KeywayExceptionHandler(NullLogger<KeywayExceptionHandler>.Instance, audit);
        var member = new Caller("u_bob", "bob", Caller.MemberRole, "k_bob", null);
        var http = Request(member);
        var denied = Assert.Throws<AccessDeniedException>(() => new AccessPolicy([]).Demand(member, Permission.Use, "billing", "staging"));

        Assert.True(await handler.TryHandleAsync(http, denied, CancellationToken.None));

        Assert.Equal(403, http.Response.StatusCode);
        var entry = Assert.Single(audit.Entries);
        Assert.Equal(("access.denied", AuditOutcome.Denied, "billing", "staging"), (entry.Action, entry.Outcome, entry.Resource, entry.Environment));
        Assert.Same(member, entry.Actor);
        Assert.Equal("forbidden", entry.Detail!["code"]);
        Assert.Equal("/api/v1/resources/billing/run?environment=staging&token=[REDACTED]",
            AuditRedaction.RedactPath((string)entry.Detail[AuditRedaction.PathKey]!));
    }

    [Fact]
    public async Task Other_failures_are_not_denials()
    {
        var audit = new RecordingAuditLog();
        var handler = new KeywayExceptionHandler(NullLogger<KeywayExceptionHandler>.Instance, audit);
        var http = Request(new Caller("u_bob", "bob", Caller.MemberRole, null, null));

        Assert.True(await handler.TryHandleAsync(http, new KeywayException(404, "not_found", "There is no resource named 'billing'."), CancellationToken.None));

        Assert.Equal(404, http.Response.StatusCode);
        Assert.Empty(audit.Entries);
    }
}
