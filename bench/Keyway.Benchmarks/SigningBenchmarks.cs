using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Keyway.Credentials;
using Keyway.Outbound;
using Keyway.Secrets;

namespace Keyway.Benchmarks;

/// <summary>
/// What signing costs. AWS Signature Version 4 runs on every request of an <c>awsSigV4</c> resource (the proxy's hot
/// path): a GET, and a PUT whose 1 KB body is hashed. A JWT assertion (RS256, ES256) is signed per token request
/// (<c>jwt_bearer</c>, <c>private_key_jwt</c>, a GitHub App's JWT), never per resource request. The baseline is
/// the bearer resource's work for the same request: setting one header.
/// </summary>
[MemoryDiagnoser]
public class SigningBenchmarks
{
    private static readonly DateTimeOffset Now = new(2026, 12, 8, 10, 0, 0, TimeSpan.Zero);
    private readonly byte[] _body = RandomNumberGenerator.GetBytes(1024);
    private AwsSigV4Signer _signer = null!;
    private SigningKey _rsa = null!;
    private SigningKey _ec = null!;

    [GlobalSetup]
    public void Setup()
    {
        _signer = new AwsSigV4Signer("AKIAIOSFODNN7EXAMPLE", new Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), null, "eu-west-1", "execute-api");
        using var rsa = RSA.Create(2048);
        _rsa = SigningKey.FromPem(rsa.ExportPkcs8PrivateKeyPem(), "RS256", null, "bench");
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        _ec = SigningKey.FromPem(ec.ExportPkcs8PrivateKeyPem(), "ES256", null, "bench");
    }

    private static HttpRequestMessage Request(HttpMethod method) =>
        new(method, "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/items/42?color=blue&size=m")
        {
            Headers = { { "Accept", "application/json" }, { "X-Client", "keyway" } },
        };

    [Benchmark(Baseline = true)]
    public HttpRequestMessage Bearer_header()
    {
        var request = Request(HttpMethod.Get);
        HeaderRules.Set(request, "Authorization", "Bearer sk_live_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c");
        return request;
    }

    [Benchmark]
    public HttpRequestMessage SigV4_get()
    {
        var request = Request(HttpMethod.Get);
        _signer.Sign(request, AwsSigV4Signer.EmptyPayloadHash, Now);
        return request;
    }

    [Benchmark]
    public HttpRequestMessage SigV4_put_1KB()
    {
        var request = Request(HttpMethod.Put);
        _signer.Sign(request, Convert.ToHexStringLower(SHA256.HashData(_body)), Now);
        return request;
    }

    [Benchmark]
    public string Jwt_assertion_RS256() => _rsa.Sign(Claims);

    [Benchmark]
    public string Jwt_assertion_ES256() => _ec.Sign(Claims);

    private static void Claims(System.Text.Json.Utf8JsonWriter writer)
    {
        writer.WriteString("iss", "keyway-ledger");
        writer.WriteString("sub", "keyway-ledger");
        writer.WriteString("aud", "https://login.example.com/oauth2/token");
        writer.WriteNumber("iat", 1_796_724_000);
        writer.WriteNumber("exp", 1_796_724_300);
        writer.WriteString("jti", "0b8f3c52d1a44e7c9f1d2e3a4b5c6d7e");
    }
}
