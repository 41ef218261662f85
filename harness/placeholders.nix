# `{{attr}}` in a scenario template's content becomes that secret's placeholder, as
# `${config.age.placeholder.<attr>}` does in the NixOS tests (../vm-tests/lib.nix). Used by
# ./system.nix and ./home.nix.
#
# Arguments: placeholders (attr -> placeholder string), the template's attribute name (for the
# error), and the text.
placeholders: templateAttr: text:
builtins.concatStringsSep "" (
  map (
    part:
    if builtins.isList part then
      placeholders.${builtins.head part}
        or (throw "agenixd harness: template ${templateAttr} names {{${builtins.head part}}}, which is no secret of this configuration")
    else
      part
  ) (builtins.split "\\{\\{([^{}]+)}}" text)
)
