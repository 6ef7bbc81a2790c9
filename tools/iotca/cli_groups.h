/*
 * cli_groups.h - every command group of iotca, in the order --help lists
 * them. Adding a group is one line here (plus its cmd_<name>.c in
 * CMakeLists.txt); the file defines `const cli_group cmd_<name>_group`.
 *
 * Deliberately without an include guard: cli.h and main.c include it with
 * different definitions of CLI_GROUP.
 */
CLI_GROUP(account)
CLI_GROUP(key)
CLI_GROUP(regcode)
CLI_GROUP(ca)
CLI_GROUP(product)
CLI_GROUP(assoc)
CLI_GROUP(device)
