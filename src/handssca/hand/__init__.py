"""MANO-format hand layer, safe loader, license-free default hand and joint orders."""
