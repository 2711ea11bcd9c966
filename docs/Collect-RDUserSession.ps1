#Requires -Version 5.1
<#
.SYNOPSIS
    Writes one snapshot of the Remote Desktop sessions a Connection Broker knows, for evtrack.

.DESCRIPTION
    Runs Get-RDUserSession -ConnectionBroker BROKER and writes its sessions with Export-Csv to
    OUTPUTFOLDER\rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv (the poll time in UTC), adding two columns:
    PolledAt (the poll time, ISO 8601 UTC, e.g. 2026-01-14T09:15:00Z) and ConnectionBroker. With no session
    the file holds the header alone, so that evtrack sees a poll that found nobody (not a missing poll).

    The file is UTF-8 (with a byte-order mark, as Export-Csv -Encoding UTF8 writes it), is written under a
    temporary name first and renamed when complete: a reader never sees half a snapshot. It is the same file
    `evtrack poll --broker BROKER --out FOLDER --once` writes; read the folder with `evtrack report FOLDER` or
    `evtrack ingest FOLDER`.

    Run it from Windows PowerShell 5.1 (powershell.exe; the RemoteDesktop module is not loaded by
    PowerShell 7) as an account that is a member of the local Administrators group on the Connection Broker.
    Schedule it every 15 minutes: see docs/polling.md.

.PARAMETER ConnectionBroker
    The RD Connection Broker (default: this computer's FQDN).

.PARAMETER OutputFolder
    Where the snapshot is written (a local folder or a share the account can write to; it must exist).

.EXAMPLE
    powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File C:\evtrack\Collect-RDUserSession.ps1 -ConnectionBroker rdcb01.contoso.com -OutputFolder \\fileserver\rds-polls

.NOTES
    Exit code 0 when the snapshot was written, 1 when it was not (the reason on stderr).
#>
[CmdletBinding()]
param(
    [string]$ConnectionBroker = [System.Net.Dns]::GetHostEntry($env:COMPUTERNAME).HostName,

    [Parameter(Mandatory = $true)]
    [string]$OutputFolder
)

$ErrorActionPreference = 'Stop'

# RDUserSession's properties in their order, then the two columns added here: the header of a poll with no session
$Columns = @('ServerName','SessionId','UserName','DomainName','ServerIPAddress','TSProtocol','ApplicationType','ResolutionWidth','ResolutionHeight','ColorDepth','CreateTime','DisconnectTime','SessionState','CollectionName','CollectionType','UnifiedSessionId','HostServer','IdleTime','RemoteFxEnabled','PolledAt','ConnectionBroker')

$temp = $null
try {
    Import-Module RemoteDesktop

    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    $now = [DateTime]::UtcNow
    $polledAt = $now.ToString('yyyy-MM-dd''T''HH:mm:ss''Z''', $invariant)
    $stamp = $now.ToString('yyyyMMdd''T''HHmmss''Z''', $invariant)

    # .NET resolves relative paths against the process's folder, not PowerShell's: use the full path
    $folder = (Resolve-Path -LiteralPath $OutputFolder).ProviderPath
    $name = 'rdusersession_{0}_{1}.csv' -f $ConnectionBroker, $stamp
    $final = Join-Path $folder $name
    $temp = Join-Path $folder ('.{0}.tmp' -f $name)

    $sessions = @(Get-RDUserSession -ConnectionBroker $ConnectionBroker |
        Select-Object -Property *,
            @{Name = 'PolledAt'; Expression = { $polledAt }},
            @{Name = 'ConnectionBroker'; Expression = { $ConnectionBroker }})

    if ($sessions.Count -gt 0) {
        $sessions | Export-Csv -LiteralPath $temp -NoTypeInformation -Encoding UTF8
    }
    else {
        $header = New-Object -TypeName PSObject
        foreach ($column in $Columns) {
            Add-Member -InputObject $header -MemberType NoteProperty -Name $column -Value $null
        }
        ($header | ConvertTo-Csv -NoTypeInformation)[0] | Set-Content -LiteralPath $temp -Encoding UTF8
    }

    # a rename in one folder is atomic; it fails rather than overwrite a snapshot of the same second
    [System.IO.File]::Move($temp, $final)
    $temp = $null
    Write-Verbose ('{0} session(s) written to {1}' -f $sessions.Count, $final)
}
catch {
    [Console]::Error.WriteLine(('Collect-RDUserSession: {0}' -f $_.Exception.Message))
    exit 1
}
finally {
    if ($temp -and (Test-Path -LiteralPath $temp)) {
        Remove-Item -LiteralPath $temp -Force -ErrorAction SilentlyContinue
    }
}
exit 0
