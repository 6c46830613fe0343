// Where a medium's staged changes live on the host disk.
//
// One directory per medium (not per state of it), so that staged changes
// survive commits, unmounts and a killed daemon, and a different disc finds
// a different directory: `$XDG_STATE_HOME/isofuse/<medium key>`, with
// `$XDG_STATE_HOME` defaulting to `~/.local/state` as the XDG spec says.

import SessionStore
import SystemPackage

public enum StagingLocation {
    /// The default staging directory of a medium, for a process with `environment`.
    public static func defaultDirectory(for identity: MediumIdentity,
                                        environment: [String: String]) throws(IsofuseError) -> FilePath {
        try stateDirectory(environment: environment).appending("isofuse").appending(identity.mediumKey)
    }

    private static func stateDirectory(environment: [String: String]) throws(IsofuseError) -> FilePath {
        // The XDG spec says to ignore relative values.
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            return FilePath(state)
        }
        guard let home = environment["HOME"], home.hasPrefix("/") else {
            throw IsofuseError(.invalidArgument, "neither XDG_STATE_HOME nor HOME is set: give a staging directory")
        }
        return FilePath(home).appending(".local").appending("state")
    }
}
