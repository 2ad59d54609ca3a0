# Generic region swap: whatever region the source is in becomes the destination's region.
# ${SOURCE_REGION} and ${DEST_REGION} are filled in per destination; their values match
# literally (a `-` or `.` in a value is not regex syntax). Whole tokens only, as in the
# per-pair files.
s/\b${SOURCE_REGION}\b/${DEST_REGION}/g
