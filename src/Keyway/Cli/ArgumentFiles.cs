using System.Text;

namespace Keyway.Cli;

/// <summary>
/// The <c>@file</c> and <c>@-</c> forms of an option's value, as curl reads <c>-d</c>: the text of
/// a file, or of stdin. System.CommandLine's own response files are off (<see cref="KeywayCli"/>), so
/// these reach Keyway as written.
/// </summary>
internal static class ArgumentFiles
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The value itself, or for <c>@path</c> the file's text and for <c>@-</c> stdin's, byte for byte
    /// (UTF-8; a file that is not UTF-8 is a usage error, as the API carries bodies as text).
    /// </summary>
    public static async Task<string> ReadAsync(CliIo io, string value, string option, CancellationToken ct)
    {
        if (!value.StartsWith('@'))
        {
            return value;
        }

        if (value == "@-")
        {
            return await io.In.ReadToEndAsync(ct);
        }

        var path = value[1..];
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CliException(ExitCodes.Usage, $"{option} {value}: cannot read {path}: {e.Message}");
        }

        try
        {
            return s_strictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new CliException(ExitCodes.Usage,
                $"{option} {value}: {path} is not UTF-8 text. The API carries bodies as text; send binary bodies through the proxy (/proxy/RESOURCE/PATH).");
        }
    }
}
