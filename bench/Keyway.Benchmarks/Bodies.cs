using System.Globalization;
using System.Text;

namespace Keyway.Benchmarks;

/// <summary>Deterministic JSON-like response bodies of a given size.</summary>
internal static class Bodies
{
    public static string Json(int length, string? secretInTheMiddle = null)
    {
        var builder = new StringBuilder(length + 128);
        builder.Append("{\"items\":[");
        for (var i = 0; builder.Length < length; i++)
        {
            if (i > 0)
            {
                builder.Append(',');
            }

            builder.Append(CultureInfo.InvariantCulture,
                $"{{\"id\":{1000 + i},\"name\":\"item-{i}\",\"status\":\"active\",\"owner\":\"usr_{i % 7}\",\"tags\":[\"alpha\",\"beta\"]}}");
            if (secretInTheMiddle is not null && builder.Length >= length / 2)
            {
                builder.Append(CultureInfo.InvariantCulture, $",{{\"echo\":\"{secretInTheMiddle}\"}}");
                secretInTheMiddle = null;
            }
        }

        builder.Append("]}");
        return builder.ToString();
    }

    public static byte[] JsonUtf8(int length) => Encoding.UTF8.GetBytes(Json(length))[..length];
}
