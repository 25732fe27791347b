"""bigupload"""
