/*
 * replay_main.c - runs a fuzz target over its corpus without libFuzzer.
 *
 * usage: <target>_replay DIR_OR_FILE...
 * Every regular file is fed to LLVMFuzzerTestOneInput once, so the seed
 * corpus and every saved crash input stay regression tests in every build.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (64u << 20)

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	long n;
	int rc = -1;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    (unsigned long)n > REPLAY_MAX_INPUT || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	if ((data = malloc((size_t)n + 1)) == NULL)
		goto out;
	if (n > 0 && fread(data, 1, (size_t)n, f) != (size_t)n)
		goto out;
	LLVMFuzzerTestOneInput(data, (size_t)n);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "%s: cannot read\n", path);
	free(data);
	fclose(f);
	return rc;
}

static int
replay_path(const char *path, int *count)
{
	struct stat st;
	struct dirent *de;
	char child[4096];
	DIR *d;
	int rc = 0;

	if (stat(path, &st) != 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path);
	}
	if ((d = opendir(path)) == NULL) {
		perror(path);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		if (replay_path(child, count) != 0)
			rc = -1;
	}
	closedir(d);
	return rc;
}

int
main(int argc, char **argv)
{
	int i, count = 0, rc = 0;

	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) != 0)
			rc = 1;
	if (count == 0) {
		fprintf(stderr, "no corpus files found\n");
		return 1;
	}
	printf("%d passed, %d failed\n", rc == 0 ? count : 0, rc == 0 ? 0 : 1);
	return rc;
}
