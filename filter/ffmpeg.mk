# filter/ffmpeg.mk: ffmpeg and ffprobe with ffmeter's meter/ameter filters.
# Included by the top-level Makefile (GNU make), which sets, before the
# include (see the contract at the top of Makefile):
#
#   BUILD ABS_BUILD SRCDIR      build directory (relative, absolute), source root
#   FFMPEG_SRC                  an FFmpeg tree to use, or empty: fetch
#   FFMPEG_SUITE                Debian suite to fetch: bookworm|trixie|unstable
#   FFMPEG_BUILD FFMPEG_BINDIR  our work directory; where ffmpeg/ffprobe land
#   LIBMETER_A LIBMETER_PC      static libmeter; its -uninstalled.pc
#   CC CCACHE SANITIZE          compiler, "ccache" or empty, sanitizer flags
#
# Optional here:
#   FFMPEG_JOBS   parallel jobs of FFmpeg's own make   [number of CPUs]
#   FFMPEG_DL     cache of downloaded source tarballs, shared by every
#                 FFMPEG_BUILD                          [$(BUILD)/ffmpeg-dl]
#
# `make ffmpeg` always runs filter/build-ffmpeg.sh, which does only what
# changed: a filter source edit recompiles that object and relinks, a new
# libmeter.a relinks, FFmpeg is configured again only when its configure
# line, its configure script or libmeter's pc file changed.

FFMPEG_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FFMPEG_DL   ?= $(BUILD)/ffmpeg-dl

.PHONY: ffmpeg
ffmpeg: $(LIBMETER_A) $(LIBMETER_PC)
	@FF_BUILD='$(abspath $(FFMPEG_BUILD))' FF_BINDIR='$(abspath $(FFMPEG_BINDIR))' \
	 FF_SRC='$(if $(strip $(FFMPEG_SRC)),$(abspath $(FFMPEG_SRC)))' \
	 FF_SUITE='$(FFMPEG_SUITE)' FF_DL='$(abspath $(FFMPEG_DL))' \
	 LIBMETER_A='$(abspath $(LIBMETER_A))' LIBMETER_PC='$(abspath $(LIBMETER_PC))' \
	 SRCDIR='$(SRCDIR)' CC='$(CC)' CCACHE='$(CCACHE)' SANITIZE='$(SANITIZE)' \
	 JOBS='$(FFMPEG_JOBS)' \
	 $(SRCDIR)/filter/build-ffmpeg.sh
