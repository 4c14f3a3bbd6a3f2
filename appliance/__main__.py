"""`python -m appliance` is the same as the `vigbox` command."""

from appliance.cli import main

raise SystemExit(main())
