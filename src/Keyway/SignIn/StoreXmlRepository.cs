using System.Text;
using System.Xml.Linq;
using Keyway.Secrets;
using Keyway.Storage;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace Keyway.SignIn;

/// <summary>
/// Keeps ASP.NET Core Data Protection's keys (which protect session cookies and the single sign-on
/// state) in the Keyway store, so every replica reads the sessions the others issue. Each key's XML
/// is encrypted with the <see cref="KeyRing"/>, bound to its row, so the store never holds one in
/// plain text and <c>keyway operator rekey</c> moves them with everything else.
/// </summary>
/// <remarks>
/// Data Protection calls this synchronously and rarely (at start, then when a key is about to
/// expire, about every 90 days), so the synchronous database calls cost nothing on a request path.
/// </remarks>
internal sealed class StoreXmlRepository(Database database, KeyRing keys, TimeProvider time) : IXmlRepository
{
    public static string AssociatedData(string name) => $"dataprotection_keys:{name}:xml";

    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var connection = database.CreateConnection();
        connection.Open();
        var rows = connection.Query<(string Name, byte[] Xml)>("SELECT name, xml FROM dataprotection_keys ORDER BY created_at, name");
        return rows.Select(r => XElement.Parse(Encoding.UTF8.GetString(keys.Decrypt(r.Xml, AssociatedData(r.Name))))).ToList();
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        var name = string.IsNullOrEmpty(friendlyName) ? Guid.NewGuid().ToString("N") : friendlyName;
        var xml = keys.Encrypt(Encoding.UTF8.GetBytes(element.ToString(SaveOptions.DisableFormatting)), AssociatedData(name));
        using var connection = database.CreateConnection();
        connection.Open();
        // Two replicas may create a key at the same moment: both keep working, each key is stored once.
        connection.Execute(
            "INSERT INTO dataprotection_keys (name, xml, created_at) VALUES (@name, @xml, @now) ON CONFLICT (name) DO NOTHING",
            new { name, xml, now = time.GetUtcNow().ToStore() });
    }
}
